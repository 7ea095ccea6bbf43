// The anchor stream: real training images drawn in seeded epochs (a fresh permutation of the
// training set per epoch), cut into batches lazily, so a stream of any length holds one batch.
// Stream position p is training image permutation(seed, "anchors", floor(p / N))[p mod N], so
// the anchors of any set of positions can be drawn directly (the stream server does).

import { Rng } from "../../core/rng.ts";
import { imageSize, makeBatch } from "../../core/batch.ts";
import type { Batch, Dataset } from "../../core/batch.ts";

/** Draws the anchors of arbitrary stream positions; keeps the last anchor epoch's permutation. */
export class AnchorDraw {
  readonly #train: Dataset;
  readonly #seed: number;
  #epoch = -1;
  #permutation: Int32Array = new Int32Array(0);

  constructor(train: Dataset, seed: number) {
    this.#train = train;
    this.#seed = seed;
  }

  /** The anchor batch of `positions`, each carried as the sample position of its image. */
  at(positions: Int32Array): Batch {
    const train = this.#train;
    const n = train.shape[0];
    const size = imageSize(train.shape);
    const b = positions.length;
    const images = new Float32Array(b * size);
    const labels = new Int32Array(b);
    const ids = new Int32Array(b);
    for (let j = 0; j < b; j++) {
      const epoch = Math.floor(positions[j] / n);
      if (epoch !== this.#epoch) {
        this.#permutation = new Rng(this.#seed, "anchors", epoch).permutation(n);
        this.#epoch = epoch;
      }
      const i = this.#permutation[positions[j] % n];
      images.set(train.images.subarray(i * size, (i + 1) * size), j * size);
      labels[j] = train.labels[i];
      ids[j] = train.ids[i];
    }
    return {
      ...makeBatch({
        images,
        shape: [b, train.shape[1], train.shape[2], train.shape[3]],
        labels,
        ids,
        provenance: "real",
      }),
      samples: positions.slice(),
    };
  }
}

export function* anchorBatches(
  train: Dataset,
  count: number,
  batchSize: number,
  seed: number,
): Generator<Batch> {
  const draw = new AnchorDraw(train, seed);
  for (let start = 0; start < count; start += batchSize) {
    const b = Math.min(batchSize, count - start);
    yield draw.at(Int32Array.from({ length: b }, (_, j) => start + j));
  }
}
