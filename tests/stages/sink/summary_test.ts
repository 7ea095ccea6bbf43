// The summary: closeness to the training set (nearest distance, memorized fraction by the 1/3
// ratio test) on cases with known answers, and summary.md with the run's per-class counts.

import assert from "node:assert/strict";
import { from, lastValueFrom, toArray } from "rxjs";
import { Rng } from "../../../core/rng.ts";
import { makeBatch } from "../../../core/batch.ts";
import type { Batch, Dataset } from "../../../core/batch.ts";
import { Tally } from "../../../core/tally.ts";
import { makeDataset } from "../../../stages/load/dataset.ts";
import { closeness, MEMORIZATION_RATIO, summarySink } from "../../../stages/sink/summary.ts";

const D = 16;

/** Random 4x4x1 training images on [0, 1), labels i mod 3. */
function trainingSet(n: number, seed = 1): Dataset {
  const rng = new Rng(seed, "summary-test");
  const images = Float32Array.from({ length: n * D }, () => rng.uniform());
  return makeDataset(
    "summary-test",
    images,
    [n, 4, 4, 1],
    Int32Array.from({ length: n }, (_, i) => i % 3),
  );
}

function image(ds: Dataset, i: number): Float32Array {
  return ds.images.slice(i * D, (i + 1) * D);
}

function concatImages(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function batchOf(images: Float32Array, labels: number[]): Batch {
  const n = labels.length;
  return makeBatch({
    images,
    shape: [n, 4, 4, 1],
    labels: Int32Array.from(labels),
    ids: Int32Array.from({ length: n }, (_, i) => i),
    provenance: "noised",
    generator: "noise",
  });
}

async function withTempDir(f: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "sia-summary-" });
  try {
    await f(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// ---------------------------------------------------------------------------------------------
// closeness

Deno.test("closeness of training images themselves: distance 0, all memorized", () => {
  const train = trainingSet(30);
  const c = closeness(train.images, train);
  assert.equal(c.images, 30);
  assert.equal(c.meanNearestDistance, 0);
  assert.equal(c.memorizedFraction, 1);
  // A subset, in another order.
  const some = concatImages([image(train, 7), image(train, 2), image(train, 29)]);
  assert.deepEqual(closeness(some, train), {
    images: 3,
    meanNearestDistance: 0,
    memorizedFraction: 1,
  });
});

Deno.test("closeness of images far from the training set: none memorized", () => {
  const train = trainingSet(30);
  // Far away, every training image looks about equally far: ratio near 1.
  const far = new Float32Array(5 * D).fill(50);
  const c = closeness(far, train);
  assert.equal(c.images, 5);
  assert.equal(c.memorizedFraction, 0);
  assert.ok(c.meanNearestDistance > 45 * Math.sqrt(D), `${c.meanNearestDistance}`);
});

Deno.test("closeness gives the exact mean nearest distance and the 1/3 ratio test", () => {
  // Training images at 0, 1 and 3 times the all-ones vector / 4: pairwise distances 1, 2, 3.
  const train = makeDataset(
    "line",
    Float32Array.from({ length: 3 * D }, (_, k) => [0, 0.25, 0.75][Math.floor(k / D)]),
    [3, 4, 4, 1],
    Int32Array.of(0, 1, 2),
  );
  // Queries on the same line at t/4 * ones, i.e. at distance t from train image 0 along it.
  const at = (t: number) => new Float32Array(D).fill(t / 4);
  // t = 0.2: nearest 0.2, second 0.8: ratio 1/4 < 1/3, memorized.
  // t = 0.25: nearest 0.25, second 0.75: ratio exactly 1/3, not memorized (strict).
  // t = 0.5: nearest 0.5, second 0.5: ratio 1.
  // t = 2.9: nearest 0.1 (image 2), second 0.9 (image 1 at 1): ratio 1/9, memorized.
  const c = closeness(concatImages([at(0.2), at(0.25), at(0.5), at(2.9)]), train);
  assert.equal(c.images, 4);
  assert.ok(Math.abs(c.meanNearestDistance - (0.2 + 0.25 + 0.5 + 0.1) / 4) < 1e-6);
  assert.equal(c.memorizedFraction, 0.5);
  assert.equal(MEMORIZATION_RATIO, 1 / 3);
});

Deno.test("closeness of nothing, or against fewer than 2 training images, is NaN", () => {
  const train = trainingSet(10);
  const none = closeness(new Float32Array(0), train);
  assert.equal(none.images, 0);
  assert.ok(Number.isNaN(none.meanNearestDistance) && Number.isNaN(none.memorizedFraction));
  const one = makeDataset("one", new Float32Array(D), [1, 4, 4, 1], null);
  const c = closeness(new Float32Array(2 * D), one);
  assert.equal(c.images, 2);
  assert.ok(Number.isNaN(c.memorizedFraction));
});

// ---------------------------------------------------------------------------------------------
// summarySink

Deno.test("summary sink writes summary.md with the per-class counts from the tally", async () => {
  await withTempDir(async (dir) => {
    const train = trainingSet(30);
    const test = trainingSet(12, 99);
    const tally = new Tally();
    const printed: string[] = [];
    const sink = summarySink({
      dir,
      nnSample: 8,
      train,
      test,
      tally,
      print: (t) => printed.push(t),
    });
    // 10 images: classes 0 x3, 1 x5, 2 x2; the first 4 are copies of training images.
    const input = [
      batchOf(
        concatImages([image(train, 0), image(train, 5), image(train, 9)]),
        [0, 1, 1],
      ),
      batchOf(
        concatImages([image(train, 11), new Float32Array(3 * D).fill(50)]),
        [2, 0, 1, 1],
      ),
      batchOf(new Float32Array(3 * D).fill(-50), [0, 2, 1]),
    ];
    const passed = await lastValueFrom(
      from(input).pipe(sink.operator, toArray()),
    );
    for (const b of passed) tally.add(b);
    assert.equal(passed.length, 3);
    passed.forEach((b, i) => assert.equal(b, input[i], "batches pass through unchanged"));

    const report = await sink.finish(false);
    const text = await Deno.readTextFile(`${dir}/summary.md`);
    assert.deepEqual(printed, [text]);
    const lines = text.split("\n");
    assert.equal(lines[0], "# sia run summary");
    assert.ok(lines.includes("| class | 0 | 1 | 2 | total |"), text);
    assert.ok(lines.includes("|---|---|---|---|---|"), text);
    assert.ok(lines.includes("| images | 3 | 5 | 2 | 10 |"), text);
    assert.ok(
      text.includes("Training set: 30 images from summary-test; produced 10: noised (noise)."),
      text,
    );
    // The first 8 images were compared: 4 copies (memorized), 4 far away.
    assert.ok(lines.includes("| images compared | 8 | 8 |"), text);
    assert.ok(
      lines.some((l) => l.startsWith("| memorized (nearest / second nearest < 1/3) | 50.0 % |")),
      text,
    );
    const produced = report.produced as { images: number; memorizedFraction: number };
    assert.equal(produced.images, 8);
    assert.equal(produced.memorizedFraction, 0.5);
    const held = report.heldOut as { images: number };
    assert.equal(held.images, 8);
    assert.deepEqual(
      report.heldOut,
      closeness(test.images.subarray(0, 8 * D), train),
      "held-out figures are the test set's first nnSample images",
    );
  });
});

Deno.test("summary sink: unlabeled class, no test set, interrupted run", async () => {
  await withTempDir(async (dir) => {
    const train = trainingSet(10);
    const tally = new Tally();
    const sink = summarySink({ dir, nnSample: 100, train, test: null, tally, print: () => {} });
    const input = [batchOf(new Float32Array(3 * D).fill(0.5), [-1, 4, -1])];
    for (const b of await lastValueFrom(from(input).pipe(sink.operator, toArray()))) tally.add(b);
    const report = await sink.finish(true);
    assert.equal(report.heldOut, null);
    const text = await Deno.readTextFile(`${dir}/summary.md`);
    const lines = text.split("\n");
    assert.equal(lines[0], "# sia run summary (interrupted)");
    assert.ok(lines.includes("| class | unlabeled | 4 | total |"), text);
    assert.ok(lines.includes("| images | 2 | 1 | 3 |"), text);
    // Fewer images than nnSample: all of them are compared.
    assert.ok(lines.includes("| images compared | 3 | n/a |"), text);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dir), (e) => e.name), ["summary.md"]);
  });
});

Deno.test("summary sink with nnSample 0 compares nothing and says n/a", async () => {
  await withTempDir(async (dir) => {
    const train = trainingSet(10);
    const tally = new Tally();
    const sink = summarySink({
      dir,
      nnSample: 0,
      train,
      test: trainingSet(5, 3),
      tally,
      print: () => {},
    });
    const input = [batchOf(image(train, 1), [1])];
    for (const b of await lastValueFrom(from(input).pipe(sink.operator, toArray()))) tally.add(b);
    const report = await sink.finish(false);
    assert.equal(report.heldOut, null);
    assert.equal((report.produced as { images: number }).images, 0);
    const text = await Deno.readTextFile(`${dir}/summary.md`);
    assert.ok(text.includes("| images compared | 0 | n/a |"), text);
    assert.ok(text.includes("| mean distance to nearest training image | n/a | n/a |"), text);
  });
});
