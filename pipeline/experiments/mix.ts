// Wang et al.'s mixing of real and generated data for contrastive learning: generated images are
// appended to the real ones without labels, and real data is replicated `dup` times, so a real
// image is drawn `dup` times as often as a generated one. The step budget is fixed, not the
// epochs, so a larger pool adds no compute. Batches are drawn by a seeded stream per step, so a
// resumed run draws the same batches.

import { Rng } from "../../core/rng.ts";
import type { Batch, Dataset } from "../../core/batch.ts";
import { imageSize, makeBatch, Provenance } from "../../core/batch.ts";

export interface Pool {
  /** Real training images (labels kept, for the bookkeeping; the learner ignores them). */
  readonly real: Dataset;
  /** Generated or noised images, appended unlabeled; null for the real-only baseline. */
  readonly extra: Batch | null;
  /** Real replication factor. */
  readonly dup: number;
}

/** Probability that a draw is a real image: dup N_real / (dup N_real + N_extra). */
export function realShare(nReal: number, nExtra: number, dup: number): number {
  return (dup * nReal) / (dup * nReal + nExtra);
}

/** The images of step `step`: `batch` draws with replacement from the replicated mixture. */
export function drawBatch(pool: Pool, batch: number, seed: number, step: number): Batch {
  const rng = new Rng(seed, "mix", step);
  const size = imageSize(pool.real.shape);
  const images = new Float32Array(batch * size);
  const labels = new Int32Array(batch);
  const ids = new Int32Array(batch);
  const provenance = new Uint8Array(batch);
  const generator: string[] = [];
  const nReal = pool.real.shape[0];
  const nExtra = pool.extra ? pool.extra.shape[0] : 0;
  const total = pool.dup * nReal + nExtra;
  for (let j = 0; j < batch; j++) {
    const u = rng.int(total);
    if (u < pool.dup * nReal) {
      const i = u % nReal;
      images.set(pool.real.images.subarray(i * size, (i + 1) * size), j * size);
      labels[j] = pool.real.labels[i];
      ids[j] = pool.real.ids[i];
      provenance[j] = Provenance.real;
      generator.push("");
    } else {
      const i = u - pool.dup * nReal;
      const extra = pool.extra!;
      images.set(extra.images.subarray(i * size, (i + 1) * size), j * size);
      labels[j] = -1;
      ids[j] = extra.ids[i];
      provenance[j] = extra.provenance[i];
      generator.push(extra.generator[i]);
    }
  }
  const [, h, w, c] = pool.real.shape;
  return makeBatch({ images, shape: [batch, h, w, c], labels, ids, provenance, generator });
}
