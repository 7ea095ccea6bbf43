// Wang et al.'s mixing: the share of real draws follows dup N_real / (dup N_real + N_extra),
// generated images arrive unlabeled, and a step's batch depends only on (seed, step).

import assert from "node:assert/strict";
import { makeBatch } from "../../../core/batch.ts";
import { drawBatch, realShare } from "../../../pipeline/experiments/mix.ts";
import { makeDataset } from "../../../stages/load/dataset.ts";

const real = makeDataset(
  "real",
  new Float32Array(50 * 4).fill(0.5),
  [50, 2, 2, 1],
  Int32Array.from({ length: 50 }, (_, i) => i % 5),
);
const extra = makeBatch({
  images: new Float32Array(200 * 4).fill(0.25),
  shape: [200, 2, 2, 1],
  labels: new Int32Array(200).fill(3),
  ids: Int32Array.from({ length: 200 }, (_, i) => i),
  provenance: "generated",
  generator: "closed-form",
});

Deno.test("real share: dup N_real / (dup N_real + N_extra), and the draws follow it", () => {
  const pool = { real, extra, dup: 10 };
  assert.equal(realShare(pool.real.shape[0], pool.extra!.shape[0], pool.dup), 500 / 700);
  let realDraws = 0;
  const draws = 200 * 100;
  for (let step = 0; step < 100; step++) {
    const b = drawBatch(pool, 200, 1, step);
    for (let j = 0; j < 200; j++) if (b.provenance[j] === 0) realDraws++;
  }
  const p = 500 / 700;
  // 5 binomial standard deviations.
  assert.ok(Math.abs(realDraws / draws - p) < 5 * Math.sqrt((p * (1 - p)) / draws));
});

Deno.test("generated images are unlabeled and keep their provenance; real ones keep labels", () => {
  const b = drawBatch({ real, extra, dup: 1 }, 300, 2, 0);
  for (let j = 0; j < 300; j++) {
    if (b.provenance[j] === 0) {
      assert.equal(b.images[4 * j], 0.5);
      assert.equal(b.labels[j], b.ids[j] % 5);
      assert.equal(b.generator[j], "");
    } else {
      assert.equal(b.images[4 * j], 0.25);
      assert.equal(b.labels[j], -1);
      assert.equal(b.generator[j], "closed-form");
    }
  }
});

Deno.test("a step's batch depends only on (seed, step); the baseline draws real images only", () => {
  const pool = { real, extra, dup: 10 };
  assert.deepEqual(drawBatch(pool, 64, 3, 7).ids, drawBatch(pool, 64, 3, 7).ids);
  assert.notDeepEqual(drawBatch(pool, 64, 3, 7).ids, drawBatch(pool, 64, 3, 8).ids);
  const baseline = drawBatch({ real, extra: null, dup: 10 }, 64, 3, 7);
  assert.ok(baseline.provenance.every((p) => p === 0));
});
