// CIFAR-10 binary batches: channel-major records built here load as NHWC, checked pixel by pixel
// against the CHW source, and broken files are one SiaError naming the file and the problem.

import assert from "node:assert/strict";
import { CIFAR_RECORD, loadCifar, parseCifar } from "../../../stages/load/cifar.ts";
import { assertFileError, cifarBytes, cifarPixel, gzip, unit, withTempDir } from "./_fixtures.ts";

/** Checks NHWC image k of `images` against record r (with salt) of the CHW fixture. */
function assertRecord(images: Float32Array, k: number, r: number): void {
  for (let y = 0; y < 32; y++) {
    for (let x = 0; x < 32; x++) {
      for (let c = 0; c < 3; c++) {
        const got = images[((k * 32 + y) * 32 + x) * 3 + c];
        const want = unit(cifarPixel(r, c, y, x));
        if (got !== want) {
          assert.fail(`image ${k} pixel (${y}, ${x}) channel ${c}: ${got}, expected ${want}`);
        }
      }
    }
  }
}

Deno.test("CIFAR_RECORD is one label byte plus 3 x 32 x 32 pixels", () => {
  assert.equal(CIFAR_RECORD, 1 + 3 * 32 * 32);
});

Deno.test("parseCifar transposes CHW records to HWC pixel by pixel", () => {
  const labels = [6, 9, 0, 3];
  const { images, labels: got } = parseCifar("b.bin", cifarBytes(labels));
  assert.deepEqual(Array.from(got), labels);
  assert.equal(images.length, labels.length * 3072);
  for (let r = 0; r < labels.length; r++) assertRecord(images, r, r);
  // Spot check one pixel by hand: record 1, row 2, column 5, green.
  const bytes = cifarBytes(labels);
  const raw = bytes[1 * 3073 + 1 + 1 * 1024 + 2 * 32 + 5];
  assert.equal(raw, cifarPixel(1, 1, 2, 5));
  assert.equal(images[((1 * 32 + 2) * 32 + 5) * 3 + 1], Math.fround(raw / 255));
});

Deno.test("loadCifar: one batch file", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/data_batch_1.bin`;
    const labels = [1, 0, 7, 7, 2];
    await Deno.writeFile(path, cifarBytes(labels));
    const ds = await loadCifar([path]);
    assert.equal(ds.source, path);
    assert.deepEqual([...ds.shape], [5, 32, 32, 3]);
    assert.deepEqual(Array.from(ds.labels), labels);
    assert.deepEqual(Array.from(ds.ids), [0, 1, 2, 3, 4]);
    for (let r = 0; r < labels.length; r++) assertRecord(ds.images, r, r);
    for (const v of ds.images) assert.ok(v >= 0 && v <= 1);
  });
});

Deno.test("loadCifar: several batches concatenate in the given order", async () => {
  await withTempDir(async (dir) => {
    const a = `${dir}/data_batch_1.bin`;
    const b = `${dir}/data_batch_2.bin`;
    await Deno.writeFile(a, cifarBytes([1, 2, 3]));
    await Deno.writeFile(b, cifarBytes([8, 9], 3)); // records 3 and 4 of the pixel formula
    const ds = await loadCifar([a, b]);
    assert.equal(ds.source, `${a},${b}`);
    assert.deepEqual([...ds.shape], [5, 32, 32, 3]);
    assert.deepEqual(Array.from(ds.labels), [1, 2, 3, 8, 9]);
    assert.deepEqual(Array.from(ds.ids), [0, 1, 2, 3, 4]);
    for (let k = 0; k < 5; k++) assertRecord(ds.images, k, k);
    const reversed = await loadCifar([b, a]);
    assert.deepEqual(Array.from(reversed.labels), [8, 9, 1, 2, 3]);
    assertRecord(reversed.images, 0, 3);
    assertRecord(reversed.images, 2, 0);
  });
});

Deno.test("loadCifar: a gzipped batch loads the same", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/test_batch.bin`;
    await Deno.writeFile(path, await gzip(cifarBytes([4, 5])));
    const ds = await loadCifar([path]);
    assert.deepEqual(Array.from(ds.labels), [4, 5]);
    assertRecord(ds.images, 0, 0);
    assertRecord(ds.images, 1, 1);
  });
});

// ---------------------------------------------------------------------------------------------
// Bad input

Deno.test("bad input: CIFAR file size not a multiple of 3073", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/data_batch_1.bin`;
    await Deno.writeFile(path, cifarBytes([1, 2]).subarray(0, 2 * 3073 - 1));
    await assertFileError(loadCifar([path]), path, "6145", "multiple of 3073");
    await Deno.writeFile(path, new Uint8Array(0));
    await assertFileError(loadCifar([path]), path, "size 0", "3073");
    // 3072 bytes: a record without its label byte (e.g. a CIFAR-100-like mistake).
    await Deno.writeFile(path, new Uint8Array(3072));
    await assertFileError(loadCifar([path]), path, "size 3072");
  });
});

Deno.test("bad input: CIFAR label > 9", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/data_batch_1.bin`;
    await Deno.writeFile(path, cifarBytes([3, 10, 4]));
    await assertFileError(loadCifar([path]), path, "record 1", "label 10", "0 to 9");
  });
});

Deno.test("bad input: the broken one of several CIFAR batches is the one named", async () => {
  await withTempDir(async (dir) => {
    const good = `${dir}/data_batch_1.bin`;
    const bad = `${dir}/data_batch_2.bin`;
    await Deno.writeFile(good, cifarBytes([1]));
    await Deno.writeFile(bad, cifarBytes([2, 255]));
    await assertFileError(loadCifar([good, bad]), bad, "record 1 has label 255");
  });
});

Deno.test("bad input: missing CIFAR file", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/data_batch_9.bin`;
    await assertFileError(loadCifar([path]), path, "no such file or directory");
  });
});
