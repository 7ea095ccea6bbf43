// Running counts: total, per class (unlabeled first) and per origin (provenance and generator),
// on hand-made batches.

import assert from "node:assert/strict";
import { makeBatch, Provenance } from "../../core/batch.ts";
import type { Batch } from "../../core/batch.ts";
import { Tally } from "../../core/tally.ts";

/** A batch of 1x1x1 images with the given labels and origins. */
function batch(
  labels: number[],
  provenance: (keyof typeof Provenance)[],
  generator: string[],
): Batch {
  const n = labels.length;
  return makeBatch({
    images: new Float32Array(n),
    shape: [n, 1, 1, 1],
    labels: Int32Array.from(labels),
    ids: Int32Array.from({ length: n }, (_, i) => i),
    provenance: Uint8Array.from(provenance, (p) => Provenance[p]),
    generator,
  });
}

Deno.test("an empty tally has no counts", () => {
  const tally = new Tally();
  assert.equal(tally.total, 0);
  assert.deepEqual(tally.classes(), []);
  assert.deepEqual(tally.toJSON(), { total: 0, perClass: {}, perOrigin: {} });
});

Deno.test("per-class and per-origin counts over several batches", () => {
  const tally = new Tally();
  tally.add(batch([3, 1, 3, -1], ["noised", "noised", "real", "generated"], [
    "noise",
    "noise",
    "",
    "ddpm",
  ]));
  tally.add(batch([1, 1, 0], ["noised", "real", "generated"], ["noise", "", "ddpm"]));
  tally.add(batch([], [], []));
  tally.add(
    makeBatch({
      images: new Float32Array(2),
      shape: [2, 1, 1, 1],
      labels: Int32Array.of(7, 3),
      ids: Int32Array.of(0, 1),
      provenance: "noised",
      generator: "noise",
    }),
  );

  assert.equal(tally.total, 9);
  // Classes ascending, unlabeled (-1) first.
  assert.deepEqual(tally.classes(), [[-1, 1], [0, 1], [1, 3], [3, 3], [7, 1]]);
  assert.deepEqual(
    Object.fromEntries(tally.perOrigin),
    { "noised (noise)": 5, "real": 2, "generated (ddpm)": 2 },
  );
  // Counts add up.
  const classSum = tally.classes().reduce((s, [, n]) => s + n, 0);
  const originSum = [...tally.perOrigin.values()].reduce((s, n) => s + n, 0);
  assert.equal(classSum, tally.total);
  assert.equal(originSum, tally.total);
});

Deno.test("real images without a generator name are counted as plain 'real'", () => {
  const tally = new Tally();
  tally.add(
    makeBatch({
      images: new Float32Array(3),
      shape: [3, 1, 1, 1],
      labels: Int32Array.of(2, 2, 5),
      ids: Int32Array.of(10, 11, 12),
      provenance: "real",
    }),
  );
  assert.deepEqual([...tally.perOrigin.entries()], [["real", 3]]);
  assert.deepEqual(tally.classes(), [[2, 2], [5, 1]]);
});

Deno.test("the same provenance from different generators is kept apart", () => {
  const tally = new Tally();
  tally.add(batch([0, 0, 0], ["generated", "generated", "generated"], ["a", "b", "a"]));
  assert.deepEqual(Object.fromEntries(tally.perOrigin), {
    "generated (a)": 2,
    "generated (b)": 1,
  });
});

Deno.test("toJSON round-trips through JSON", () => {
  const tally = new Tally();
  tally.add(batch([9, -1, 2, 9], ["noised", "noised", "noised", "real"], [
    "noise",
    "noise",
    "noise",
    "",
  ]));
  const json = JSON.parse(JSON.stringify(tally));
  assert.deepEqual(json, {
    total: 4,
    perClass: { "-1": 1, "2": 1, "9": 2 },
    perOrigin: { "noised (noise)": 3, "real": 1 },
  });
});
