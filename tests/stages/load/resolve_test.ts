// loadSplits: from a name or a path to train and test sets, for every layout sia recognizes.

import assert from "node:assert/strict";
import { encodeNpy } from "../../../core/npy.ts";
import { SiaError } from "../../../core/errors.ts";
import { classCounts } from "../../../stages/load/dataset.ts";
import type { Dataset } from "../../../stages/load/dataset.ts";
import { FASHION_MNIST_DIR, loadSplits } from "../../../stages/load/resolve.ts";
import type { LoadOptions } from "../../../stages/load/resolve.ts";
import {
  assertFileError,
  cifarBytes,
  cifarPixel,
  gzip,
  idxBytes,
  npyBytes,
  pixelBytes,
  unit,
  withTempDir,
} from "./_fixtures.ts";

const OPTIONS: LoadOptions = { testFraction: 0.2, splitSeed: 0, labels: "" };
const H = 4;
const W = 3;

/** Writes an IDX images file (and labels) with n images; returns the bytes written. */
async function writeIdx(
  dir: string,
  prefix: string,
  labels: number[],
  options: { gz?: boolean; salt?: number } = {},
): Promise<Uint8Array> {
  const suffix = options.gz ? ".gz" : "";
  const pixels = pixelBytes(labels.length * H * W, options.salt ?? 0);
  const img = idxBytes([labels.length, H, W], pixels);
  const lab = idxBytes([labels.length], labels);
  await Deno.writeFile(
    `${dir}/${prefix}-images-idx3-ubyte${suffix}`,
    options.gz ? await gzip(img) : img,
  );
  await Deno.writeFile(
    `${dir}/${prefix}-labels-idx1-ubyte${suffix}`,
    options.gz ? await gzip(lab) : lab,
  );
  return pixels;
}

function assertPixels(ds: Dataset, pixels: Uint8Array): void {
  assert.equal(ds.images.length, pixels.length);
  for (let k = 0; k < pixels.length; k++) {
    if (ds.images[k] !== unit(pixels[k])) assert.fail(`value ${k}: ${ds.images[k]}`);
  }
}

function cycleLabels(n: number, classes = 10): number[] {
  return Array.from({ length: n }, (_, i) => (i * 7) % classes);
}

// ---------------------------------------------------------------------------------------------
// IDX directories and files

Deno.test("loadSplits: a directory of gzipped train/t10k IDX files gives both splits", async () => {
  await withTempDir(async (dir) => {
    const trainLabels = cycleLabels(30);
    const testLabels = cycleLabels(12).reverse();
    const trainPixels = await writeIdx(dir, "train", trainLabels, { gz: true });
    const testPixels = await writeIdx(dir, "t10k", testLabels, { gz: true, salt: 9 });
    for (const path of [dir, `${dir}/`]) {
      const splits = await loadSplits(path, OPTIONS);
      assert.deepEqual([...splits.train.shape], [30, H, W, 1]);
      assert.deepEqual(Array.from(splits.train.labels), trainLabels);
      assertPixels(splits.train, trainPixels);
      assert.ok(splits.test);
      assert.deepEqual([...splits.test.shape], [12, H, W, 1]);
      assert.deepEqual(Array.from(splits.test.labels), testLabels);
      assertPixels(splits.test, testPixels);
      assert.equal(splits.train.source, `${dir}/train-images-idx3-ubyte.gz`);
      assert.equal(splits.test.source, `${dir}/t10k-images-idx3-ubyte.gz`);
      assert.match(splits.splitNote, /train and t10k/);
    }
  });
});

Deno.test("loadSplits: raw (not gzipped) IDX directory, and train only", async () => {
  await withTempDir(async (dir) => {
    const labels = cycleLabels(20);
    const pixels = await writeIdx(dir, "train", labels);
    const splits = await loadSplits(dir, OPTIONS);
    assert.deepEqual(Array.from(splits.train.labels), labels);
    assertPixels(splits.train, pixels);
    assert.equal(splits.test, null, "a directory with no t10k file has no test split");
    assert.match(splits.splitNote, /no test split/);
  });
});

Deno.test("loadSplits: a single IDX images file finds its labels and is split stratified", async () => {
  await withTempDir(async (dir) => {
    const labels = cycleLabels(50, 5);
    await writeIdx(dir, "train", labels, { gz: true });
    const path = `${dir}/train-images-idx3-ubyte.gz`;
    const splits = await loadSplits(path, { ...OPTIONS, testFraction: 0.2, splitSeed: 3 });
    assert.ok(splits.test);
    assert.equal(splits.train.shape[0] + splits.test.shape[0], 50);
    for (const [label, count] of classCounts(splits.test.labels)) {
      assert.ok(label >= 0 && label < 5);
      assert.equal(count, 2, `class ${label}: round(10 * 0.2) test images`);
    }
    assert.match(splits.splitNote, /stratified.*0\.2.*splitSeed 3/);
    // Passing the labels file instead of the images file is a clear error.
    const labelsPath = `${dir}/train-labels-idx1-ubyte.gz`;
    await assertFileError(loadSplits(labelsPath, OPTIONS), labelsPath, "labels file");
  });
});

// ---------------------------------------------------------------------------------------------
// CIFAR-10 directories

Deno.test("loadSplits: a CIFAR-10 directory (data_batch_1, data_batch_2, test_batch)", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/data_batch_1.bin`, cifarBytes([0, 1, 2]));
    await Deno.writeFile(`${dir}/data_batch_2.bin`, cifarBytes([3, 4], 3));
    await Deno.writeFile(`${dir}/test_batch.bin`, cifarBytes([9, 8, 7, 6], 10));
    await Deno.writeFile(`${dir}/batches.meta.txt`, new TextEncoder().encode("airplane\n"));
    const splits = await loadSplits(dir, OPTIONS);
    assert.deepEqual([...splits.train.shape], [5, 32, 32, 3]);
    assert.deepEqual(Array.from(splits.train.labels), [0, 1, 2, 3, 4]);
    assert.ok(splits.test);
    assert.deepEqual([...splits.test.shape], [4, 32, 32, 3]);
    assert.deepEqual(Array.from(splits.test.labels), [9, 8, 7, 6]);
    assert.match(splits.splitNote, /data_batch_\* and test_batch/);
    // Pixel (y, x, c) of train image 4 is record 1 of batch 2, i.e. formula record 4.
    const testImages: Float32Array = splits.test.images;
    for (const [y, x, c] of [[0, 0, 0], [31, 31, 2], [5, 17, 1], [17, 5, 0]]) {
      const got = splits.train.images[((4 * 32 + y) * 32 + x) * 3 + c];
      assert.equal(got, unit(cifarPixel(4, c, y, x)));
      const t = testImages[(y * 32 + x) * 3 + c];
      assert.equal(t, unit(cifarPixel(10, c, y, x)));
    }
  });
});

Deno.test("loadSplits: CIFAR-10 directory without test_batch has no test split", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/data_batch_1.bin`, cifarBytes([5, 6]));
    const splits = await loadSplits(dir, OPTIONS);
    assert.equal(splits.train.shape[0], 2);
    assert.equal(splits.test, null);
  });
});

Deno.test("loadSplits: a single CIFAR .bin file is split stratified", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/test_batch.bin`;
    const labels = cycleLabels(20, 2);
    await Deno.writeFile(path, cifarBytes(labels));
    const splits = await loadSplits(path, { ...OPTIONS, testFraction: 0.5 });
    assert.ok(splits.test);
    assert.deepEqual([...classCounts(splits.test.labels).values()], [5, 5]);
  });
});

// ---------------------------------------------------------------------------------------------
// .npy files

async function writeNpyPair(images: string, labels: string | null, n: number): Promise<number[]> {
  const values = Float32Array.from({ length: n * H * W }, (_, i) => (i % 11) / 10);
  await Deno.writeFile(images, encodeNpy(values, [n, H, W]));
  const classes = cycleLabels(n, 4);
  if (labels) await Deno.writeFile(labels, encodeNpy(Int32Array.from(classes), [n]));
  return classes;
}

Deno.test("loadSplits: X.npy with sibling X.labels.npy", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/digits.npy`;
    const labels = await writeNpyPair(path, `${dir}/digits.labels.npy`, 40);
    const splits = await loadSplits(path, OPTIONS);
    assert.ok(splits.test);
    assert.equal(splits.train.shape[0], 32);
    assert.equal(splits.test.shape[0], 8);
    for (const [label, count] of classCounts(splits.test.labels)) {
      assert.equal(count, 2, `class ${label}`);
    }
    // Labels travel with their images.
    for (const part of [splits.train, splits.test]) {
      part.ids.forEach((id, j) => assert.equal(part.labels[j], labels[id]));
    }
    // testFraction 0: everything is train, no test split.
    const all = await loadSplits(path, { ...OPTIONS, testFraction: 0 });
    assert.equal(all.test, null);
    assert.equal(all.train.shape[0], 40);
    assert.deepEqual(Array.from(all.train.labels), labels);
    assert.match(all.splitNote, /no test split/);
  });
});

Deno.test("loadSplits: images-00000.npy with labels-00000.npy (file and directory)", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/images-00000.npy`;
    const labels = await writeNpyPair(path, `${dir}/labels-00000.npy`, 20);
    for (const source of [path, dir]) {
      const splits = await loadSplits(source, { ...OPTIONS, testFraction: 0 });
      assert.equal(splits.train.source, path);
      assert.deepEqual(Array.from(splits.train.labels), labels);
      assert.deepEqual([...splits.train.shape], [20, H, W, 1]);
    }
  });
});

Deno.test("loadSplits: an .npy without labels is unlabeled; an explicit labels path wins", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/x.npy`;
    await writeNpyPair(path, null, 10);
    const plain = await loadSplits(path, { ...OPTIONS, testFraction: 0 });
    assert.deepEqual(Array.from(plain.train.labels), new Array(10).fill(-1));
    const explicit = `${dir}/somewhere-else.npy`;
    const other = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0];
    await Deno.writeFile(explicit, npyBytes("|u1", [10], Uint8Array.from(other)));
    const labelled = await loadSplits(path, { ...OPTIONS, testFraction: 0, labels: explicit });
    assert.deepEqual(Array.from(labelled.train.labels), other);
  });
});

Deno.test({
  name: "loadSplits: a directory with images.npy and images.labels.npy",
  fn: () =>
    withTempDir(async (dir) => {
      const labels = await writeNpyPair(`${dir}/images.npy`, `${dir}/images.labels.npy`, 12);
      const splits = await loadSplits(dir, { ...OPTIONS, testFraction: 0 });
      assert.deepEqual(Array.from(splits.train.labels), labels);
    }),
});

// ---------------------------------------------------------------------------------------------
// Names and missing things

Deno.test("loadSplits: 'mnist' is the embedded set with a seeded stratified split", async () => {
  const splits = await loadSplits("mnist", { testFraction: 0.1, splitSeed: 4, labels: "" });
  assert.ok(splits.test);
  assert.equal(splits.train.source, "mnist (embedded)");
  assert.equal(splits.train.shape[0] + splits.test.shape[0], 10_000);
  for (const [label, count] of classCounts(splits.test.labels)) {
    const total = count + (classCounts(splits.train.labels).get(label) ?? 0);
    assert.equal(count, Math.round(total * 0.1), `class ${label}`);
  }
  const again = await loadSplits("mnist", { testFraction: 0.1, splitSeed: 4, labels: "" });
  assert.deepEqual(again.test?.ids, splits.test.ids);
});

Deno.test("bad input: missing file or directory", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/does-not-exist.npy`;
    await assertFileError(loadSplits(path, OPTIONS), path, "no such file or directory");
  });
  // A bare word that is not a data set name says so.
  const message = await assertFileError(loadSplits("cifar", OPTIONS), "cifar", "no such file");
  assert.match(message, /not a data set name either: mnist, fashion-mnist/);
});

Deno.test("bad input: a directory with nothing sia recognizes", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/readme.txt`, new TextEncoder().encode("hello"));
    await assertFileError(loadSplits(dir, OPTIONS), dir, "no data found");
  });
});

Deno.test("bad input: a broken file inside a data directory names that file", async () => {
  await withTempDir(async (dir) => {
    await writeIdx(dir, "train", cycleLabels(10));
    const bad = `${dir}/t10k-images-idx3-ubyte`;
    await Deno.writeFile(bad, idxBytes([5, H, W], pixelBytes(5 * H * W)).subarray(0, 30));
    await Deno.writeFile(`${dir}/t10k-labels-idx1-ubyte`, idxBytes([5], [1, 2, 3, 4, 5]));
    await assertFileError(loadSplits(dir, OPTIONS), bad, "truncated");
  });
});

Deno.test("loadSplits errors are SiaErrors with exit code 1", async () => {
  await assert.rejects(
    loadSplits("/nonexistent/sia/data", OPTIONS),
    (e) => e instanceof SiaError && e.exitCode === 1,
  );
});

// ---------------------------------------------------------------------------------------------
// Fashion-MNIST from the Debian package, when installed

const hasFashion = await Deno.stat(FASHION_MNIST_DIR).then(() => true, () => false);

Deno.test({
  name: "loadSplits: fashion-mnist (Debian dataset-fashion-mnist) is 60,000 + 10,000 28x28x1",
  ignore: !hasFashion,
  fn: async () => {
    const splits = await loadSplits("fashion-mnist", OPTIONS);
    assert.deepEqual([...splits.train.shape], [60_000, 28, 28, 1]);
    assert.ok(splits.test);
    assert.deepEqual([...splits.test.shape], [10_000, 28, 28, 1]);
    assert.match(splits.splitNote, /train and t10k/);
    for (const [part, perClass] of [[splits.train, 6000], [splits.test, 1000]] as const) {
      const counts = classCounts(part.labels);
      assert.deepEqual([...counts.keys()], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      for (const count of counts.values()) assert.equal(count, perClass);
      let lo = Infinity;
      let hi = -Infinity;
      for (const v of part.images) {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      assert.equal(lo, 0);
      assert.equal(hi, 1);
    }
  },
});
