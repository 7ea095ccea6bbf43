// Dataset building and the seeded operations on it: validation in makeDataset, take, the
// stratified train/test split and class-balanced subsets.

import assert from "node:assert/strict";
import { SiaError } from "../../../core/errors.ts";
import {
  classCounts,
  groupByLabel,
  makeDataset,
  splitStratified,
  subset,
  take,
} from "../../../stages/load/dataset.ts";
import type { Dataset } from "../../../stages/load/dataset.ts";
import { loadEmbeddedMnist } from "../../../stages/load/mnist.ts";

/** A small dataset whose image i is filled with the value i / 1000, so content identifies it. */
function synthetic(labels: number[], h = 2, w = 3, c = 1): Dataset {
  const n = labels.length;
  const size = h * w * c;
  const images = new Float32Array(n * size);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < size; k++) images[i * size + k] = (i + k / size / 10) / 1000;
  }
  return makeDataset("synthetic", images, [n, h, w, c], Int32Array.from(labels));
}

/** Labels with uneven class sizes, including an unlabeled (-1) group, shuffled deterministically. */
function unevenLabels(): number[] {
  const counts: [number, number][] = [[0, 37], [1, 5], [2, 120], [3, 1], [4, 64], [-1, 13]];
  const labels = counts.flatMap(([label, count]) => new Array(count).fill(label));
  // Interleave: a fixed stride visit so classes are mixed through the index range.
  const n = labels.length;
  return Array.from({ length: n }, (_, i) => labels[(i * 97) % n]); // 97 is coprime with 240
}

/** Checks every image of `part` is the source image its id names, with that image's label. */
function assertFaithful(source: Dataset, part: Dataset): void {
  const size = source.shape[1] * source.shape[2] * source.shape[3];
  assert.deepEqual(part.shape.slice(1), source.shape.slice(1));
  assert.equal(part.images.length, part.shape[0] * size);
  for (let j = 0; j < part.shape[0]; j++) {
    const id = part.ids[j];
    assert.equal(part.labels[j], source.labels[id], `label of id ${id}`);
    const got = part.images.subarray(j * size, (j + 1) * size);
    const want = source.images.subarray(id * size, (id + 1) * size);
    if (!got.every((v, k) => v === want[k])) assert.fail(`image content of id ${id} differs`);
  }
  for (let j = 1; j < part.ids.length; j++) {
    assert.ok(part.ids[j] > part.ids[j - 1], "ids are kept in source order");
  }
}

const mnist = loadEmbeddedMnist();

// ---------------------------------------------------------------------------------------------
// makeDataset, take, groupByLabel, classCounts

Deno.test("makeDataset fills in default labels (-1) and ids (0..n-1)", () => {
  const ds = makeDataset("src", new Float32Array(12), [3, 2, 2, 1], null);
  assert.deepEqual(Array.from(ds.labels), [-1, -1, -1]);
  assert.deepEqual(Array.from(ds.ids), [0, 1, 2]);
  const kept = makeDataset("src", new Float32Array(12), [3, 2, 2, 1], null, Int32Array.of(7, 8, 9));
  assert.deepEqual(Array.from(kept.ids), [7, 8, 9]);
});

Deno.test("makeDataset rejects values that do not fill the shape, label count, non-finite", () => {
  assert.throws(
    () => makeDataset("src", new Float32Array(11), [3, 2, 2, 1], null),
    (e) => e instanceof SiaError && e.message === "src: 11 values do not fill shape [3,2,2,1]",
  );
  assert.throws(
    () => makeDataset("src", new Float32Array(12), [3, 2, 2, 1], Int32Array.of(1, 2)),
    (e) => e instanceof SiaError && e.message === "src: 2 labels for 3 images",
  );
  const bad = new Float32Array(12);
  bad[9] = NaN;
  assert.throws(
    () => makeDataset("src", bad, [3, 2, 2, 1], null),
    (e) =>
      e instanceof SiaError &&
      e.message === "src: image 2 has a non-finite pixel (NaN at value index 9)",
  );
});

Deno.test("take returns the given positions in order, with labels and ids", () => {
  const ds = synthetic([5, 6, 7, 8, 9]);
  const part = take(ds, [4, 0, 2]);
  assert.deepEqual([...part.shape], [3, 2, 3, 1]);
  assert.deepEqual(Array.from(part.labels), [9, 5, 7]);
  assert.deepEqual(Array.from(part.ids), [4, 0, 2]);
  assert.deepEqual(part.images.subarray(0, 6), ds.images.subarray(24, 30));
  assert.deepEqual(part.images.subarray(6, 12), ds.images.subarray(0, 6));
  // Ids survive a second take: they name the original source image, not the intermediate one.
  assert.deepEqual(Array.from(take(part, [2, 1]).ids), [2, 0]);
  assert.equal(take(ds, []).shape[0], 0);
});

Deno.test("groupByLabel and classCounts: ascending labels, positions in index order", () => {
  const labels = Int32Array.of(2, -1, 0, 2, 0, 2);
  const groups = groupByLabel(labels);
  assert.deepEqual([...groups.entries()], [[-1, [1]], [0, [2, 4]], [2, [0, 3, 5]]]);
  assert.deepEqual([...classCounts(labels).entries()], [[-1, 1], [0, 2], [2, 3]]);
});

// ---------------------------------------------------------------------------------------------
// splitStratified

function assertSplit(ds: Dataset, fraction: number, seed: number): [Dataset, Dataset] {
  const [train, test] = splitStratified(ds, fraction, seed);
  const n = ds.shape[0];
  assert.equal(train.shape[0] + test.shape[0], n);
  // Disjoint, and the union is everything.
  const trainIds = new Set(train.ids);
  const testIds = new Set(test.ids);
  assert.equal(trainIds.size, train.shape[0], "no id twice in train");
  assert.equal(testIds.size, test.shape[0], "no id twice in test");
  for (const id of testIds) assert.ok(!trainIds.has(id), `id ${id} in both train and test`);
  const all = [...trainIds, ...testIds].sort((a, b) => a - b);
  assert.deepEqual(all, Array.from({ length: n }, (_, i) => i));
  // Per class: exactly round(count * fraction) go to test.
  const testCounts = classCounts(test.labels);
  const trainCounts = classCounts(train.labels);
  for (const [label, count] of classCounts(ds.labels)) {
    const want = Math.round(count * fraction);
    assert.equal(testCounts.get(label) ?? 0, want, `class ${label}: ${count} images`);
    assert.equal(trainCounts.get(label) ?? 0, count - want, `class ${label} train`);
  }
  assertFaithful(ds, train);
  assertFaithful(ds, test);
  return [train, test];
}

Deno.test("splitStratified on uneven classes: disjoint, complete, round(count * f) per class", () => {
  const ds = synthetic(unevenLabels());
  for (const fraction of [0, 0.1, 0.2, 0.25, 0.5, 0.9, 1]) {
    for (const seed of [0, 1, 99]) assertSplit(ds, fraction, seed);
  }
});

Deno.test("splitStratified on embedded mnist: 1/6 held out per class", () => {
  const [train, test] = assertSplit(mnist, 1 / 6, 0);
  let expected = 0;
  for (const count of classCounts(mnist.labels).values()) expected += Math.round(count / 6);
  assert.equal(test.shape[0], expected);
  assert.equal(train.shape[0], 10_000 - expected);
});

Deno.test("splitStratified: same seed same split, different seed different split", () => {
  const ds = synthetic(unevenLabels());
  const [trainA, testA] = splitStratified(ds, 0.3, 5);
  const [trainB, testB] = splitStratified(ds, 0.3, 5);
  assert.deepEqual(testA.ids, testB.ids);
  assert.deepEqual(trainA.ids, trainB.ids);
  assert.deepEqual(testA.images, testB.images);
  const [, testC] = splitStratified(ds, 0.3, 6);
  assert.equal(testC.shape[0], testA.shape[0], "the sizes depend on the counts only");
  assert.notDeepEqual(testC.ids, testA.ids);
  const [, m1] = splitStratified(mnist, 0.2, 1);
  const [, m2] = splitStratified(mnist, 0.2, 2);
  const m2ids = new Set(m2.ids);
  const overlap = Array.from(m1.ids).filter((id) => m2ids.has(id)).length;
  // Independent 20% samples share about 20% of their members, far from all of them.
  assert.ok(overlap < 0.3 * m1.shape[0], `${overlap} of ${m1.shape[0]} shared`);
});

Deno.test("splitStratified does not depend on unrelated classes (per-class streams)", () => {
  // Removing class 4 entirely leaves the split of class 0 unchanged.
  const labels = unevenLabels();
  const ds = synthetic(labels);
  const [, test] = splitStratified(ds, 0.3, 11);
  const kept = labels.map((l, i) => [l, i]).filter(([l]) => l !== 4).map(([, i]) => i);
  const smaller = take(ds, kept);
  const [, test2] = splitStratified(smaller, 0.3, 11);
  const class0 = (d: Dataset) => Array.from(d.ids).filter((_, j) => d.labels[j] === 0);
  assert.deepEqual(class0(test2), class0(test));
});

// ---------------------------------------------------------------------------------------------
// subset

Deno.test("subset balanced: sizes 100 and 1000 give exactly size/10 per class", () => {
  for (const size of [100, 1000]) {
    const sub = subset(mnist, size, true, 0);
    assert.equal(sub.shape[0], size);
    const counts = classCounts(sub.labels);
    assert.deepEqual([...counts.keys()], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const [label, count] of counts) assert.equal(count, size / 10, `class ${label}`);
    assert.equal(new Set(sub.ids).size, size, "no image twice");
    assertFaithful(mnist, sub);
  }
});

Deno.test("subset balanced: a size not divisible by the classes gives the first classes one more", () => {
  const sub = subset(mnist, 105, true, 3);
  const counts = [...classCounts(sub.labels).values()];
  assert.deepEqual(counts, [11, 11, 11, 11, 11, 10, 10, 10, 10, 10]);
  // Unlabeled images are not a class to balance over.
  const ds = synthetic(unevenLabels());
  const s = subset(ds, 5, true, 0);
  assert.deepEqual([...classCounts(s.labels).entries()], [[0, 1], [1, 1], [2, 1], [3, 1], [4, 1]]);
});

Deno.test("subset unbalanced: exact size, distinct images, faithful", () => {
  for (const size of [1, 100, 1234, 9999]) {
    const sub = subset(mnist, size, false, 7);
    assert.equal(sub.shape[0], size);
    assert.equal(new Set(sub.ids).size, size);
    assertFaithful(mnist, sub);
  }
});

Deno.test("subset: size 0 (and the full size unbalanced) is the whole data set", () => {
  assert.equal(subset(mnist, 0, true, 1), mnist);
  assert.equal(subset(mnist, 0, false, 1), mnist);
  assert.equal(subset(mnist, 10_000, false, 1), mnist);
});

Deno.test("subset: same seed same subset, different seed different subset", () => {
  for (const balanced of [true, false]) {
    const a = subset(mnist, 500, balanced, 42);
    const b = subset(mnist, 500, balanced, 42);
    const c = subset(mnist, 500, balanced, 43);
    assert.deepEqual(a.ids, b.ids);
    assert.deepEqual(a.images, b.images);
    assert.notDeepEqual(a.ids, c.ids);
    const cIds = new Set(c.ids);
    const shared = Array.from(a.ids).filter((id) => cIds.has(id)).length;
    assert.ok(shared < 150, `${shared} of 500 shared between seeds (expected about 25)`);
  }
});

Deno.test("subset: too large is a SiaError naming data.size and the source", () => {
  assert.throws(
    () => subset(mnist, 10_001, false, 0),
    (e) =>
      e instanceof SiaError &&
      /^data\.size: 10001 images asked, mnist \(embedded\) has 10000/.test(e.message),
  );
  assert.throws(() => subset(mnist, 10_001, true, 0), (e) => e instanceof SiaError);
  // Balanced: 1,000 per class needs more images than the first short class (2: 991) has.
  const [short, count] = [...classCounts(mnist.labels)].find(([, c]) => c < 1000)!;
  assert.throws(
    () => subset(mnist, 10_000, true, 0),
    (e) =>
      e instanceof SiaError && e.message.startsWith("data.size:") &&
      e.message.includes(`1000 images of class ${short}`) && e.message.includes(`has ${count}`),
  );
});

Deno.test("subset balanced on an unlabeled data set is a SiaError", () => {
  const ds = makeDataset("plain.npy", new Float32Array(40), [10, 2, 2, 1], null);
  assert.throws(
    () => subset(ds, 4, true, 0),
    (e) => e instanceof SiaError && e.message.includes("no labels to balance over"),
  );
  assert.equal(subset(ds, 4, false, 0).shape[0], 4);
});
