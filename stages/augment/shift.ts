// The standard light augmentation of a small-image classifier: each image shifted by a random
// whole number of pixels, up to `max` each way, the uncovered border filled with 0 (pad-and-crop).
// Each image's shift is drawn from (seed, step, row), so a step's batch is the same however the
// run is cut or resumed.

import { Rng } from "../../core/rng.ts";
import type { Shape } from "../../core/batch.ts";

/** A shifted copy of NHWC images; max 0 returns the images unchanged (the same array). */
export function shiftImages(
  images: Float32Array,
  shape: Shape,
  max: number,
  seed: number,
  step: number,
): Float32Array {
  if (max === 0) return images;
  const [n, h, w, c] = shape;
  const out = new Float32Array(images.length);
  const size = h * w * c;
  for (let j = 0; j < n; j++) {
    const rng = new Rng(seed, "shift", step, j);
    const dy = rng.int(2 * max + 1) - max;
    const dx = rng.int(2 * max + 1) - max;
    for (let y = Math.max(0, dy); y < Math.min(h, h + dy); y++) {
      const from = j * size + ((y - dy) * w) * c;
      const to = j * size + (y * w) * c;
      for (let x = Math.max(0, dx); x < Math.min(w, w + dx); x++) {
        for (let k = 0; k < c; k++) out[to + x * c + k] = images[from + (x - dx) * c + k];
      }
    }
  }
  return out;
}
