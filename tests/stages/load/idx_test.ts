// IDX loading (MNIST / Fashion-MNIST format): raw and gzipped files built here from known bytes
// load exactly, and each kind of broken file is one SiaError naming the file and the problem.

import assert from "node:assert/strict";
import { idxLabelsName, loadIdx, parseIdx } from "../../../stages/load/idx.ts";
import { SiaError } from "../../../core/errors.ts";
import { assertFileError, gzip, idxBytes, pixelBytes, unit, withTempDir } from "./_fixtures.ts";

const N = 6;
const H = 5;
const W = 4;
const LABELS = [3, 1, 4, 1, 5, 9];

async function writeFixture(
  dir: string,
  options: { gzImages?: boolean; gzLabels?: boolean } = {},
): Promise<{ images: string; labels: string; pixels: Uint8Array }> {
  const pixels = pixelBytes(N * H * W);
  const images = `${dir}/train-images-idx3-ubyte${options.gzImages ? ".gz" : ""}`;
  const labels = `${dir}/train-labels-idx1-ubyte${options.gzLabels ? ".gz" : ""}`;
  const img = idxBytes([N, H, W], pixels);
  const lab = idxBytes([N], LABELS);
  await Deno.writeFile(images, options.gzImages ? await gzip(img) : img);
  await Deno.writeFile(labels, options.gzLabels ? await gzip(lab) : lab);
  return { images, labels, pixels };
}

function assertLoaded(
  ds: Awaited<ReturnType<typeof loadIdx>>,
  source: string,
  pixels: Uint8Array,
  labels: number[] | null,
): void {
  assert.equal(ds.source, source);
  assert.deepEqual([...ds.shape], [N, H, W, 1]);
  assert.equal(ds.images.length, N * H * W);
  // Pixel by pixel: image i, row y, column x is byte (i*H + y)*W + x, scaled by 1/255.
  for (let i = 0; i < N; i++) {
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const k = (i * H + y) * W + x;
        assert.equal(ds.images[k], unit(pixels[k]), `image ${i} (${y}, ${x})`);
      }
    }
  }
  assert.deepEqual(Array.from(ds.labels), labels ?? new Array(N).fill(-1));
  assert.deepEqual(Array.from(ds.ids), [0, 1, 2, 3, 4, 5]);
}

Deno.test("parseIdx reads dims big-endian and returns exactly the data bytes", () => {
  const data = pixelBytes(2 * 3 * 300);
  const parsed = parseIdx("x", idxBytes([2, 3, 300], data));
  assert.deepEqual(parsed.dims, [2, 3, 300]); // 300 > 255: the high byte matters
  assert.deepEqual(parsed.data, data);
  const big = parseIdx("y", idxBytes([70000], new Uint8Array(70000).fill(7)));
  assert.deepEqual(big.dims, [70000]);
  assert.equal(big.data.length, 70000);
});

Deno.test("loadIdx: raw images and labels load exactly", async () => {
  await withTempDir(async (dir) => {
    const { images, labels, pixels } = await writeFixture(dir);
    assertLoaded(await loadIdx(images, labels), images, pixels, LABELS);
  });
});

Deno.test("loadIdx: gzipped images and labels (by magic bytes) load exactly", async () => {
  await withTempDir(async (dir) => {
    const { images, labels, pixels } = await writeFixture(dir, { gzImages: true, gzLabels: true });
    assertLoaded(await loadIdx(images, labels), images, pixels, LABELS);
    // Gzip is detected by content, not by name: a gzipped file without .gz loads too.
    const renamed = `${dir}/images-no-suffix`;
    await Deno.rename(images, renamed);
    assertLoaded(await loadIdx(renamed, labels), renamed, pixels, LABELS);
  });
});

Deno.test("loadIdx: mixed raw images with gzipped labels, and no labels", async () => {
  await withTempDir(async (dir) => {
    const { images, labels, pixels } = await writeFixture(dir, { gzLabels: true });
    assertLoaded(await loadIdx(images, labels), images, pixels, LABELS);
    assertLoaded(await loadIdx(images, null), images, pixels, null);
  });
});

Deno.test("idxLabelsName maps images files to labels files", () => {
  assert.equal(idxLabelsName("train-images-idx3-ubyte"), "train-labels-idx1-ubyte");
  assert.equal(idxLabelsName("t10k-images-idx3-ubyte.gz"), "t10k-labels-idx1-ubyte.gz");
  assert.equal(idxLabelsName("digits.idx"), null);
});

// ---------------------------------------------------------------------------------------------
// Bad input: one SiaError, starting with the path, naming the problem

Deno.test("bad input: truncated IDX (header says more than the file holds)", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/train-images-idx3-ubyte`;
    const full = idxBytes([N, H, W], pixelBytes(N * H * W));
    await Deno.writeFile(path, full.subarray(0, full.length - 7));
    await assertFileError(loadIdx(path, null), path, "truncated", `${N * H * W} values`, "113");
  });
});

Deno.test("bad input: IDX with trailing bytes", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/imgs`;
    await Deno.writeFile(path, idxBytes([N, H, W], pixelBytes(N * H * W + 3)));
    await assertFileError(loadIdx(path, null), path, "trailing bytes", "123");
  });
});

Deno.test("bad input: truncated IDX header", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/imgs`;
    await Deno.writeFile(path, idxBytes([N, H, W], []).subarray(0, 10));
    await assertFileError(loadIdx(path, null), path, "truncated IDX header", "rank 3");
  });
});

Deno.test("bad input: bad IDX magic", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/imgs`;
    const bytes = idxBytes([N, H, W], pixelBytes(N * H * W));
    bytes[0] = 0x50; // e.g. a PGM or any other file
    await Deno.writeFile(path, bytes);
    await assertFileError(loadIdx(path, null), path, "not an IDX file", "magic");
    await Deno.writeFile(path, new Uint8Array([0, 0]));
    await assertFileError(loadIdx(path, null), path, "not an IDX file");
  });
});

Deno.test("bad input: IDX of a data type other than unsigned bytes", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/imgs`;
    await Deno.writeFile(path, idxBytes([N, H, W], new Uint8Array(4 * N * H * W), 0x0d));
    await assertFileError(loadIdx(path, null), path, "unsupported IDX data type 0xd");
  });
});

Deno.test("bad input: IDX images of the wrong rank, labels of the wrong rank", async () => {
  await withTempDir(async (dir) => {
    const images = `${dir}/imgs`;
    await Deno.writeFile(images, idxBytes([N, H * W], pixelBytes(N * H * W)));
    await assertFileError(loadIdx(images, null), images, "rank 3", `[${N},${H * W}]`);
    await Deno.writeFile(images, idxBytes([N, H, W], pixelBytes(N * H * W)));
    const labels = `${dir}/labs`;
    await Deno.writeFile(labels, idxBytes([N, 1], LABELS));
    await assertFileError(loadIdx(images, labels), labels, "rank 1");
  });
});

Deno.test("bad input: IDX labels count differs from images count", async () => {
  await withTempDir(async (dir) => {
    const { images } = await writeFixture(dir);
    const labels = `${dir}/short-labels`;
    await Deno.writeFile(labels, idxBytes([N - 1], LABELS.slice(1)));
    await assertFileError(
      loadIdx(images, labels),
      labels,
      `${N - 1} labels for ${N} images`,
      images,
    );
  });
});

Deno.test("bad input: truncated gzip", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/train-images-idx3-ubyte.gz`;
    const gz = await gzip(idxBytes([N, H, W], pixelBytes(N * H * W)));
    await Deno.writeFile(path, gz.subarray(0, Math.floor(gz.length / 2)));
    await assertFileError(loadIdx(path, null), path, "corrupt or truncated gzip");
    await Deno.writeFile(path, gz.subarray(0, gz.length - 4)); // only the size trailer missing
    await assertFileError(loadIdx(path, null), path, "gzip");
  });
});

Deno.test("bad input: missing IDX images or labels file", async () => {
  await withTempDir(async (dir) => {
    const missing = `${dir}/nope-images-idx3-ubyte`;
    await assertFileError(loadIdx(missing, null), missing, "no such file or directory");
    const { images } = await writeFixture(dir);
    const missingLabels = `${dir}/nope-labels`;
    await assertFileError(loadIdx(images, missingLabels), missingLabels, "no such file");
    await assertFileError(loadIdx(dir, null), dir, "directory");
  });
});

Deno.test("parseIdx errors are SiaErrors (user problems, exit code 1)", () => {
  try {
    parseIdx("f.idx", new Uint8Array([1, 2, 3, 4]));
    assert.fail("parseIdx accepted a bad magic number");
  } catch (e) {
    assert.ok(e instanceof SiaError);
    assert.equal(e.exitCode, 1);
    assert.match(e.message, /^f\.idx: not an IDX file/);
  }
});
