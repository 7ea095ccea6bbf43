// The anchor stream: real training images drawn in seeded epochs (a fresh permutation of the
// training set per epoch), cut into batches lazily, so a stream of any length holds one batch.

import { Rng } from "../../core/rng.ts";
import { imageSize, makeBatch } from "../../core/batch.ts";
import type { Batch, Dataset } from "../../core/batch.ts";

export function* anchorBatches(
  train: Dataset,
  count: number,
  batchSize: number,
  seed: number,
): Generator<Batch> {
  const n = train.shape[0];
  const size = imageSize(train.shape);
  let permutation: Int32Array = new Int32Array(0);
  for (let start = 0; start < count; start += batchSize) {
    const b = Math.min(batchSize, count - start);
    const images = new Float32Array(b * size);
    const labels = new Int32Array(b);
    const ids = new Int32Array(b);
    for (let j = 0; j < b; j++) {
      const position = start + j;
      if (position % n === 0) permutation = new Rng(seed, "anchors", position / n).permutation(n);
      const i = permutation[position % n];
      images.set(train.images.subarray(i * size, (i + 1) * size), j * size);
      labels[j] = train.labels[i];
      ids[j] = train.ids[i];
    }
    yield makeBatch({
      images,
      shape: [b, train.shape[1], train.shape[2], train.shape[3]],
      labels,
      ids,
      provenance: "real",
    });
  }
}
