// .npy image loading: uint8 and float32 images of rank 3 and 4 with integer labels beside them
// load exactly; every kind of unusable file is one SiaError naming the file and the problem.

import assert from "node:assert/strict";
import { encodeNpy } from "../../../core/npy.ts";
import { loadNpy, npyLabelsCandidates } from "../../../stages/load/npy.ts";
import {
  assertFileError,
  bytesOf,
  gzip,
  npyBytes,
  pixelBytes,
  unit,
  withTempDir,
} from "./_fixtures.ts";
import { HAS_NUMPY, python } from "../../_shared.ts";

const N = 4;
const H = 3;
const W = 5;

function floatPixels(n: number): Float32Array {
  // Values on [0, 1] including both ends, none of them k/255 for most i.
  return Float32Array.from(
    { length: n },
    (_, i) => (i === 0 ? 0 : i === n - 1 ? 1 : (i * 0.6180339887) % 1),
  );
}

function int64Bytes(values: number[]): Uint8Array {
  return bytesOf(BigInt64Array.from(values, (v) => BigInt(v)));
}

// ---------------------------------------------------------------------------------------------
// Good files

Deno.test("loadNpy: uint8 [N, H, W] images scale by 1/255 and gain a channel axis", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/digits.npy`;
    const pixels = pixelBytes(N * H * W);
    await Deno.writeFile(path, npyBytes("|u1", [N, H, W], pixels));
    const ds = await loadNpy(path, null);
    assert.equal(ds.source, path);
    assert.deepEqual([...ds.shape], [N, H, W, 1]);
    assert.deepEqual(Array.from(ds.images), Array.from(pixels, unit));
    assert.deepEqual(Array.from(ds.labels), [-1, -1, -1, -1]);
    assert.deepEqual(Array.from(ds.ids), [0, 1, 2, 3]);
  });
});

Deno.test("loadNpy: float32 [N, H, W, C] images load unchanged, bit for bit", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/rgb.npy`;
    const values = floatPixels(N * H * W * 3);
    await Deno.writeFile(path, encodeNpy(values, [N, H, W, 3]));
    const ds = await loadNpy(path, null);
    assert.deepEqual([...ds.shape], [N, H, W, 3]);
    assert.deepEqual(ds.images, values);
    // A float32 [N, H, W] file also gets C = 1.
    await Deno.writeFile(path, encodeNpy(values, [N * 3, H, W]));
    const flat = await loadNpy(path, null);
    assert.deepEqual([...flat.shape], [N * 3, H, W, 1]);
    assert.deepEqual(flat.images, values);
  });
});

Deno.test("loadNpy: uint8 [N, H, W, 3] with int64, int32 and uint8 labels", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/x.npy`;
    const pixels = pixelBytes(N * H * W * 3, 5);
    await Deno.writeFile(path, npyBytes("|u1", [N, H, W, 3], pixels));
    const labels = [7, 0, 9, 2];
    const files: [string, Uint8Array][] = [
      ["<i8", int64Bytes(labels)],
      ["<i4", bytesOf(Int32Array.from(labels))],
      ["|u1", Uint8Array.from(labels)],
      ["<i2", bytesOf(Int16Array.from(labels))],
    ];
    for (const [descr, data] of files) {
      const labelsPath = `${dir}/x.labels.npy`;
      await Deno.writeFile(labelsPath, npyBytes(descr, [N], data));
      const ds = await loadNpy(path, labelsPath);
      assert.deepEqual(Array.from(ds.labels), labels, `labels stored as ${descr}`);
      assert.deepEqual([...ds.shape], [N, H, W, 3]);
      // NHWC is kept as stored: value (i, y, x, c) is byte ((i*H + y)*W + x)*3 + c.
      for (let k = 0; k < pixels.length; k++) assert.equal(ds.images[k], unit(pixels[k]));
    }
  });
});

Deno.test("loadNpy: a gzipped .npy loads the same", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/x.npy`;
    const values = floatPixels(N * H * W);
    await Deno.writeFile(path, await gzip(encodeNpy(values, [N, H, W])));
    assert.deepEqual((await loadNpy(path, null)).images, values);
  });
});

Deno.test({
  name: "loadNpy: files written by numpy (uint8 images, int64 labels, version 2.0)",
  ignore: !HAS_NUMPY,
  fn: () =>
    withTempDir(async (dir) => {
      const script = `
import sys
import numpy as np
d = sys.argv[1]
x = (np.arange(5 * 7 * 6) * 37 % 256).astype(np.uint8).reshape(5, 7, 6)
np.save(d + "/images-00000.npy", x)
np.save(d + "/labels-00000.npy", np.array([4, 4, 0, 9, 1]))
f = (np.arange(5 * 7 * 6 * 3, dtype=np.float32) / np.float32(5 * 7 * 6 * 3 - 1)).reshape(5, 7, 6, 3)
with open(d + "/f.npy", "wb") as fh:
    np.lib.format.write_array(fh, f, version=(2, 0))
`;
      await python(script, dir);
      const ds = await loadNpy(`${dir}/images-00000.npy`, `${dir}/labels-00000.npy`);
      assert.deepEqual([...ds.shape], [5, 7, 6, 1]);
      assert.deepEqual(Array.from(ds.labels), [4, 4, 0, 9, 1]);
      ds.images.forEach((v, i) => assert.equal(v, unit((i * 37) % 256), `value ${i}`));
      const f = await loadNpy(`${dir}/f.npy`, null);
      assert.deepEqual([...f.shape], [5, 7, 6, 3]);
      const last = 5 * 7 * 6 * 3 - 1;
      f.images.forEach((v, i) => assert.equal(v, Math.fround(i / last), `value ${i}`));
    }),
});

Deno.test("npyLabelsCandidates: X.labels.npy, and labels-* for images-* shards", () => {
  assert.deepEqual(npyLabelsCandidates("/d/x.npy"), ["/d/x.labels.npy"]);
  assert.deepEqual(npyLabelsCandidates("/d/images-00000.npy"), [
    "/d/images-00000.labels.npy",
    "/d/labels-00000.npy",
  ]);
  assert.deepEqual(npyLabelsCandidates("rel.npy"), ["rel.labels.npy"]);
  // Only the file name is rewritten, never a directory that happens to start with "images".
  assert.deepEqual(npyLabelsCandidates("/images/x.npy"), ["/images/x.labels.npy"]);
});

// ---------------------------------------------------------------------------------------------
// Bad input

Deno.test("bad input: .npy bad header", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/x.npy`;
    await Deno.writeFile(
      path,
      npyBytes("<f4", [], new Uint8Array(8), { header: "{'descr': '<f4'}" }),
    );
    await assertFileError(loadNpy(path, null), path, "bad .npy header");
  });
});

Deno.test("bad input: .npy bad magic (not a .npy file at all)", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/x.npy`;
    await Deno.writeFile(path, new TextEncoder().encode("just some text, not an array\n"));
    await assertFileError(loadNpy(path, null), path, "not a .npy file");
  });
});

Deno.test("bad input: .npy truncated data", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/x.npy`;
    const bytes = encodeNpy(floatPixels(N * H * W), [N, H, W]);
    await Deno.writeFile(path, bytes.subarray(0, bytes.length - 1));
    await assertFileError(loadNpy(path, null), path, "truncated", `${N * H * W * 4}`);
  });
});

Deno.test("bad input: unsupported image dtype (float64 images)", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/x.npy`;
    await Deno.writeFile(path, npyBytes("<f8", [N, H, W], bytesOf(new Float64Array(N * H * W))));
    await assertFileError(
      loadNpy(path, null),
      path,
      "unsupported image dtype '<f8'",
      "uint8 or float32",
    );
    await Deno.writeFile(path, npyBytes("<i4", [N, H, W], bytesOf(new Int32Array(N * H * W))));
    await assertFileError(loadNpy(path, null), path, "unsupported image dtype '<i4'");
  });
});

Deno.test("bad input: unsupported .npy dtype (big-endian float32)", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/x.npy`;
    await Deno.writeFile(path, npyBytes(">f4", [N, H, W], new Uint8Array(N * H * W * 4)));
    await assertFileError(loadNpy(path, null), path, "unsupported dtype '>f4'");
  });
});

Deno.test("bad input: Fortran-order .npy", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/x.npy`;
    await Deno.writeFile(
      path,
      npyBytes("|u1", [N, H, W], pixelBytes(N * H * W), { fortran: true }),
    );
    await assertFileError(loadNpy(path, null), path, "Fortran-order");
  });
});

Deno.test("bad input: images of the wrong rank (rank 2)", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/x.npy`;
    await Deno.writeFile(path, npyBytes("|u1", [N, H * W], pixelBytes(N * H * W)));
    await assertFileError(loadNpy(path, null), path, "rank 3", "rank", `(${N}, ${H * W})`);
    await Deno.writeFile(path, npyBytes("|u1", [1, N, H, W, 1], pixelBytes(N * H * W)));
    await assertFileError(loadNpy(path, null), path, "(1, 4, 3, 5, 1)");
  });
});

Deno.test("bad input: NaN pixel in float32 images", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/x.npy`;
    const values = floatPixels(N * H * W);
    values[2 * H * W + 7] = NaN; // image 2
    await Deno.writeFile(path, encodeNpy(values, [N, H, W]));
    await assertFileError(loadNpy(path, null), path, "image 2", "NaN");
  });
});

Deno.test("bad input: Inf pixel in float32 images", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/x.npy`;
    const values = floatPixels(N * H * W);
    values[3 * H * W] = Infinity; // image 3
    await Deno.writeFile(path, encodeNpy(values, [N, H, W]));
    await assertFileError(loadNpy(path, null), path, "image 3", "Infinity");
    values[3 * H * W] = 0.5;
    values[1] = -Infinity; // image 0
    await Deno.writeFile(path, encodeNpy(values, [N, H, W]));
    await assertFileError(loadNpy(path, null), path, "image 0", "-Infinity");
  });
});

Deno.test("bad input: float32 values outside [0, 1]", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/x.npy`;
    const values = floatPixels(N * H * W);
    values[5] = 255; // a 0..255 image saved as float32
    await Deno.writeFile(path, encodeNpy(values, [N, H, W]));
    await assertFileError(loadNpy(path, null), path, "[0, 255]", "[0, 1]");
    values[5] = 0.5;
    values[9] = -0.25; // e.g. normalized to mean 0
    await Deno.writeFile(path, encodeNpy(values, [N, H, W]));
    await assertFileError(loadNpy(path, null), path, "[-0.25, 1]", "[0, 1]");
  });
});

Deno.test("bad input: labels count differs from images count", async () => {
  await withTempDir(async (dir) => {
    const images = `${dir}/x.npy`;
    const labels = `${dir}/x.labels.npy`;
    await Deno.writeFile(images, npyBytes("|u1", [N, H, W], pixelBytes(N * H * W)));
    await Deno.writeFile(labels, npyBytes("<i8", [N + 1], int64Bytes([0, 1, 2, 3, 4])));
    await assertFileError(
      loadNpy(images, labels),
      labels,
      `${N + 1} labels for ${N} images`,
      images,
    );
  });
});

Deno.test("bad input: float labels, and labels of rank 2", async () => {
  await withTempDir(async (dir) => {
    const images = `${dir}/x.npy`;
    const labels = `${dir}/x.labels.npy`;
    await Deno.writeFile(images, npyBytes("|u1", [N, H, W], pixelBytes(N * H * W)));
    await Deno.writeFile(labels, encodeNpy(new Float32Array(N), [N]));
    await assertFileError(loadNpy(images, labels), labels, "labels must be integers", "'<f4'");
    await Deno.writeFile(labels, encodeNpy(new Int32Array(N), [N, 1]));
    await assertFileError(loadNpy(images, labels), labels, "rank 1", `(${N}, 1)`);
  });
});

Deno.test("bad input: missing .npy images or labels file", async () => {
  await withTempDir(async (dir) => {
    const images = `${dir}/x.npy`;
    await assertFileError(loadNpy(images, null), images, "no such file or directory");
    await Deno.writeFile(images, npyBytes("|u1", [N, H, W], pixelBytes(N * H * W)));
    const labels = `${dir}/missing.labels.npy`;
    await assertFileError(loadNpy(images, labels), labels, "no such file or directory");
  });
});
