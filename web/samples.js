// A sample set drawn on canvases at the shard's own resolution (CSS scales them up, pixelated):
// pixel = round(255 * clamp(value, 0, 1)) per channel, grey for one channel. Each sample sits
// beside its nearest training image, with the NN1/NN2 distance ratio under them.

function decode(base64) {
  const bytes = Uint8Array.from(atob(base64), (ch) => ch.charCodeAt(0));
  return new Float32Array(bytes.buffer);
}

/** The canvas of image `i` of `values` ([n, h, w, c] float32). */
export function imageCanvas(values, i, [h, w, c], className) {
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  canvas.className = className;
  const context = canvas.getContext("2d");
  const image = context.createImageData(w, h);
  const base = i * h * w * c;
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < 3; k++) {
      const v = values[base + p * c + (c === 1 ? 0 : k)];
      image.data[4 * p + k] = Math.round(255 * Math.min(1, Math.max(0, v)));
    }
    image.data[4 * p + 3] = 255;
  }
  context.putImageData(image, 0, 0);
  return canvas;
}

export function tileTitle(set) {
  return `${set.generator} (${set.name}): ${set.count} samples, ${
    (100 * set.memorizedFraction).toFixed(1)
  } % memorized (r < ${set.ratioThreshold.toFixed(3)}), ${set.trainImages} training images`;
}

export function drawSet(set) {
  const images = decode(set.images);
  const nearest = decode(set.nearest);
  const tiles = document.createElement("div");
  tiles.className = "tiles";
  for (let i = 0; i < set.count; i++) {
    const tile = document.createElement("div");
    tile.className = set.ratio[i] < set.ratioThreshold ? "tile memorized" : "tile";
    tile.dataset.index = String(i);
    const sample = imageCanvas(images, i, set.shape, "sample");
    sample.title = `sample ${i}`;
    const neighbour = imageCanvas(nearest, i, set.shape, "nearest");
    neighbour.title = `training image ${set.nearestIndex[i]} (distance ${
      set.distance[i].toFixed(3)
    })`;
    const caption = document.createElement("div");
    caption.textContent = `r ${set.ratio[i] === null ? "n/a" : set.ratio[i].toFixed(3)}`;
    tile.append(sample, neighbour, caption);
    tiles.append(tile);
  }
  return tiles;
}
