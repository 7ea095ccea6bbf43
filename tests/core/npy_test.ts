// The .npy codec: exact round trips, numpy's own reader on what encodeNpy writes, numpy-written
// files decoded exactly, and one clear NpyError per kind of bad input.

import assert from "node:assert/strict";
import { decodeNpy, encodeNpy, NpyError, npyValues } from "../../core/npy.ts";
import type { NpyArray } from "../../core/npy.ts";
import { bytesOf, HAS_NUMPY, python, withTempDir } from "../_shared.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Deterministic float32 values, including awkward ones (negative zero, subnormal, huge). */
function floatValues(n: number, special = true): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.fround(Math.sin(i * 1.7 + 0.3) * (i % 5 + 1) / 3);
  if (special && n >= 6) {
    out[0] = -0;
    out[1] = 1.401298464324817e-45; // smallest subnormal
    out[2] = 3.4028234663852886e38; // largest float32
    out[3] = -1.1754943508222875e-38; // smallest normal, negative
    out[4] = 1;
    out[5] = 0.1;
  }
  return out;
}

function intValues(n: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.imul(i + 1, 0x9e3779b1) >> (i % 7);
  if (n >= 4) {
    out[0] = -2147483648;
    out[1] = 2147483647;
    out[2] = -1;
    out[3] = 0;
  }
  return out;
}

/** Builds a .npy file by hand, for headers encodeNpy would never write. */
function rawNpy(header: string, data: Uint8Array, version = 1, pad = true): Uint8Array {
  const prefix = version === 1 ? 10 : 12;
  if (pad) {
    const unpadded = prefix + header.length + 1;
    header += " ".repeat((64 - (unpadded % 64)) % 64) + "\n";
  }
  const out = new Uint8Array(prefix + header.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, header.length, true);
  else view.setUint32(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[prefix + i] = header.charCodeAt(i);
  out.set(data, prefix + header.length);
  return out;
}

function headerOf(bytes: Uint8Array): { preamble: number; text: string } {
  const length = new DataView(bytes.buffer, bytes.byteOffset).getUint16(8, true);
  const text = new TextDecoder().decode(bytes.subarray(10, 10 + length));
  return { preamble: 10 + length, text };
}

function assertNpyError(fn: () => unknown, ...fragments: (string | RegExp)[]): NpyError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof NpyError, `expected an NpyError, got ${caught}`);
  for (const f of fragments) {
    if (typeof f === "string") {
      assert.ok(caught.message.includes(f), `message ${JSON.stringify(caught.message)} lacks ${f}`);
    } else {
      assert.match(caught.message, f);
    }
  }
  return caught;
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes.slice());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

const SHAPES: readonly (readonly number[])[] = [[7], [2, 3, 5], [3, 4, 5, 2]];

// ---------------------------------------------------------------------------------------------
// Round trips and header layout

for (const shape of SHAPES) {
  Deno.test(`encodeNpy -> decodeNpy round trip is exact: float32 rank ${shape.length}`, () => {
    const values = floatValues(product(shape));
    const decoded = decodeNpy(encodeNpy(values, shape));
    assert.equal(decoded.descr, "<f4");
    assert.deepEqual(decoded.shape, [...shape]);
    assert.deepEqual(decoded.data, bytesOf(values));
    const back = npyValues(decoded);
    assert.ok(back instanceof Float32Array);
    assert.equal(back.length, values.length);
    for (let i = 0; i < values.length; i++) {
      assert.ok(Object.is(back[i], values[i]), `value ${i}: ${back[i]} != ${values[i]}`);
    }
  });

  Deno.test(`encodeNpy -> decodeNpy round trip is exact: int32 rank ${shape.length}`, () => {
    const values = intValues(product(shape));
    const decoded = decodeNpy(encodeNpy(values, shape));
    assert.equal(decoded.descr, "<i4");
    assert.deepEqual(decoded.shape, [...shape]);
    const back = npyValues(decoded);
    assert.ok(back instanceof Int32Array);
    assert.deepEqual(back, values);
  });
}

Deno.test("round trip keeps NaN and infinities bit for bit", () => {
  const values = new Float32Array([NaN, Infinity, -Infinity, -0, 0.5, 0, 1e-40, -3]);
  const decoded = decodeNpy(encodeNpy(values, [2, 2, 2]));
  assert.deepEqual(decoded.data, bytesOf(values));
  const back = npyValues(decoded) as Float32Array;
  for (let i = 0; i < values.length; i++) assert.ok(Object.is(back[i], values[i]));
});

Deno.test("encodeNpy encodes only the view of a subarray (byteOffset respected)", () => {
  const whole = floatValues(20);
  const part = whole.subarray(5, 17); // 12 values at byte offset 20
  const decoded = decodeNpy(encodeNpy(part, [3, 4]));
  assert.deepEqual(Array.from(npyValues(decoded)), Array.from(part));
  const ints = intValues(10).subarray(3, 9);
  assert.deepEqual(npyValues(decodeNpy(encodeNpy(ints, [6]))), Int32Array.from(ints));
});

Deno.test("decoded data is a fresh aligned copy, independent of the input bytes", () => {
  const values = floatValues(12);
  const file = encodeNpy(values, [3, 4]);
  // Decode from an odd offset inside a bigger buffer: the typed view must still work.
  const shifted = new Uint8Array(file.length + 3);
  shifted.set(file, 3);
  const decoded = decodeNpy(shifted.subarray(3));
  assert.equal(decoded.data.byteOffset, 0);
  assert.equal(decoded.data.buffer.byteLength, values.byteLength);
  shifted.fill(0);
  assert.deepEqual(Array.from(npyValues(decoded)), Array.from(values));
});

Deno.test("preamble (magic + version + length + header) is a multiple of 64, header ends in \\n", () => {
  const shapes: number[][] = [
    [],
    [1],
    [7],
    [0],
    [0, 3],
    [10000, 28, 28],
    [2, 3, 5],
    [3, 4, 5, 2],
    [123456, 1, 1, 1],
    [1, 2, 3, 4, 5],
    [99999, 99999, 0, 1, 1, 1],
  ];
  for (const shape of shapes) {
    for (const values of [new Float32Array(product(shape)), new Int32Array(product(shape))]) {
      const bytes = encodeNpy(values, shape);
      const { preamble, text } = headerOf(bytes);
      assert.equal(preamble % 64, 0, `shape [${shape}]: preamble ${preamble}`);
      assert.equal(bytes.length, preamble + values.byteLength);
      assert.ok(text.endsWith("\n"), `shape [${shape}]: header must end in a newline`);
      assert.ok(/^[\x20-\x7e]*\n$/.test(text), "header is printable ASCII then one newline");
      assert.deepEqual([...bytes.subarray(0, 8)], [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
      const expectedTuple = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
      assert.ok(text.includes(`'shape': ${expectedTuple}`), `${text} lacks ${expectedTuple}`);
      assert.ok(text.includes("'fortran_order': False"));
      assert.deepEqual(decodeNpy(bytes).shape, shape);
    }
  }
});

Deno.test("encodeNpy rejects a shape that does not match the value count", () => {
  assert.throws(() => encodeNpy(new Float32Array(5), [2, 3]), /5 values for shape/);
  assert.throws(() => encodeNpy(new Int32Array(6), [7]), /6 values for shape/);
});

// ---------------------------------------------------------------------------------------------
// numpy reads what encodeNpy writes

const READ_SCRIPT = `
import sys, json, hashlib
import numpy as np
path = sys.argv[1]
with open(path, "rb") as f:
    version = np.lib.format.read_magic(f)
    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    offset = f.tell()
a = np.load(path, allow_pickle=False)
bits = a.view(np.uint32) if a.dtype == np.float32 else a
print(json.dumps({
    "dtype": str(a.dtype),
    "descr": a.dtype.str,
    "shape": list(a.shape),
    "version": list(version),
    "fortran": fortran,
    "offset": offset,
    "c_contiguous": bool(a.flags.c_contiguous),
    "sha256": hashlib.sha256(a.tobytes()).hexdigest(),
    "bits": [int(x) for x in bits.ravel().tolist()],
    "values": a.ravel().tolist() if bool(np.isfinite(a).all()) else None,
}))
`;

interface NumpyView {
  dtype: string;
  descr: string;
  shape: number[];
  version: number[];
  fortran: boolean;
  offset: number;
  c_contiguous: boolean;
  sha256: string;
  bits: number[];
  values: number[] | null;
}

async function numpyReads(
  dir: string,
  name: string,
  values: Float32Array | Int32Array,
  shape: readonly number[],
): Promise<NumpyView> {
  const path = `${dir}/${name}`;
  await Deno.writeFile(path, encodeNpy(values, shape));
  const seen = JSON.parse(await python(READ_SCRIPT, path)) as NumpyView;
  const isFloat = values instanceof Float32Array;
  assert.equal(seen.dtype, isFloat ? "float32" : "int32");
  assert.equal(seen.descr, isFloat ? "<f4" : "<i4");
  assert.deepEqual(seen.shape, [...shape]);
  assert.deepEqual(seen.version, [1, 0]);
  assert.equal(seen.fortran, false);
  assert.equal(seen.offset % 64, 0, "numpy sees the data start on a 64-byte boundary");
  assert.equal(seen.c_contiguous, true);
  // Same bytes on both sides: a checksum computed independently by numpy and here.
  assert.equal(seen.sha256, await sha256Hex(bytesOf(values)));
  // Every value, bit for bit.
  const expectedBits = isFloat
    ? Array.from(new Uint32Array(values.slice().buffer))
    : Array.from(values);
  assert.deepEqual(seen.bits, expectedBits);
  return seen;
}

for (const shape of SHAPES) {
  Deno.test({
    name: `numpy reads encodeNpy's float32 and int32 files exactly: rank ${shape.length}`,
    ignore: !HAS_NUMPY,
    fn: () =>
      withTempDir(async (dir) => {
        const floats = floatValues(product(shape));
        const f = await numpyReads(dir, "f.npy", floats, shape);
        // Finite values also compare as numbers (a float32 widened to a double is exact).
        assert.ok(f.values !== null);
        assert.equal(f.values.length, floats.length);
        f.values.forEach((v, i) => assert.ok(Object.is(v, floats[i]), `value ${i}`));

        const ints = intValues(product(shape));
        const n = await numpyReads(dir, "i.npy", ints, shape);
        assert.deepEqual(n.values, Array.from(ints));
      }),
  });
}

Deno.test({
  name: "numpy reads encodeNpy's NaN, infinities, empty arrays and rank 0",
  ignore: !HAS_NUMPY,
  fn: () =>
    withTempDir(async (dir) => {
      const special = new Float32Array([NaN, Infinity, -Infinity, -0, 1e-40, 2]);
      const seen = await numpyReads(dir, "special.npy", special, [3, 2]);
      assert.equal(seen.values, null);
      await numpyReads(dir, "empty.npy", new Float32Array(0), [0, 28, 28]);
      await numpyReads(dir, "empty1.npy", new Int32Array(0), [0]);
      await numpyReads(dir, "scalar.npy", new Float32Array([0.25]), []);
      await numpyReads(dir, "big.npy", floatValues(10 * 28 * 28), [10, 28, 28, 1]);
    }),
});

// ---------------------------------------------------------------------------------------------
// numpy writes, decodeNpy reads

const WRITE_SCRIPT = `
import sys
import numpy as np
d = sys.argv[1]
f32 = (np.arange(2 * 3 * 4 * 3, dtype=np.float32) / np.float32(7)).reshape(2, 3, 4, 3)
np.save(d + "/u8.npy", (np.arange(2 * 5 * 4) * 37 % 256).astype(np.uint8).reshape(2, 5, 4))
np.save(d + "/f32.npy", f32)
np.save(d + "/i64.npy", np.array([0, 9, 3, -1, 2147483647, -2147483648, 7], dtype=np.int64))
np.save(d + "/i32.npy", np.array([[-5, 0], [2147483647, -2147483648]], dtype="<i4"))
np.save(d + "/i8.npy", np.array([-128, -1, 0, 1, 127], dtype=np.int8))
np.save(d + "/i16.npy", np.array([-32768, -1, 0, 1, 32767], dtype="<i2"))
np.save(d + "/u16.npy", np.array([0, 1, 65535], dtype="<u2"))
np.save(d + "/f8.npy", np.arange(6, dtype="<f8").reshape(2, 3) / 3)
np.save(d + "/scalar.npy", np.float32(1.5))
np.save(d + "/empty.npy", np.zeros((0, 28, 28), np.uint8))
with open(d + "/v2.npy", "wb") as f:
    np.lib.format.write_array(f, f32, version=(2, 0))
with open(d + "/v3.npy", "wb") as f:
    np.lib.format.write_array(f, f32, version=(3, 0))
np.save(d + "/be.npy", np.arange(4, dtype=">f4"))
np.save(d + "/c8.npy", np.arange(4, dtype="<c8"))
np.save(d + "/bool.npy", np.array([True, False]))
np.save(d + "/fortran.npy", np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)))
`;

Deno.test({
  name: "numpy-written files decode exactly (uint8, float32, int64, version 2.0 and 3.0, ...)",
  ignore: !HAS_NUMPY,
  fn: () =>
    withTempDir(async (dir) => {
      await python(WRITE_SCRIPT, dir);
      const load = async (name: string): Promise<NpyArray> =>
        decodeNpy(await Deno.readFile(`${dir}/${name}`));

      const u8 = await load("u8.npy");
      assert.equal(u8.descr, "|u1");
      assert.deepEqual(u8.shape, [2, 5, 4]);
      const u8v = npyValues(u8);
      assert.ok(u8v instanceof Uint8Array);
      assert.deepEqual(Array.from(u8v), Array.from({ length: 40 }, (_, i) => (i * 37) % 256));

      const f32Expected = Array.from({ length: 72 }, (_, i) => Math.fround(i / 7));
      for (const name of ["f32.npy", "v2.npy", "v3.npy"]) {
        const f32 = await load(name);
        assert.equal(f32.descr, "<f4", name);
        assert.deepEqual(f32.shape, [2, 3, 4, 3], name);
        const v = npyValues(f32);
        assert.ok(v instanceof Float32Array);
        assert.deepEqual(Array.from(v), f32Expected, name);
      }
      const v2 = await Deno.readFile(`${dir}/v2.npy`);
      assert.equal(v2[6], 2, "the fixture really is a version 2.0 file");

      const i64 = await load("i64.npy");
      assert.equal(i64.descr, "<i8");
      assert.deepEqual(i64.shape, [7]);
      assert.deepEqual(
        Array.from(npyValues(i64)),
        [0, 9, 3, -1, 2147483647, -2147483648, 7],
      );

      const i32 = await load("i32.npy");
      assert.deepEqual(i32.shape, [2, 2]);
      assert.deepEqual(Array.from(npyValues(i32)), [-5, 0, 2147483647, -2147483648]);
      assert.deepEqual(Array.from(npyValues(await load("i8.npy"))), [-128, -1, 0, 1, 127]);
      assert.deepEqual(Array.from(npyValues(await load("i16.npy"))), [-32768, -1, 0, 1, 32767]);
      assert.deepEqual(Array.from(npyValues(await load("u16.npy"))), [0, 1, 65535]);

      const f8 = await load("f8.npy");
      assert.equal(f8.descr, "<f8");
      assert.deepEqual(Array.from(npyValues(f8)), [0, 1 / 3, 2 / 3, 1, 4 / 3, 5 / 3]);

      const scalar = await load("scalar.npy");
      assert.deepEqual(scalar.shape, []);
      assert.deepEqual(Array.from(npyValues(scalar)), [1.5]);

      const empty = await load("empty.npy");
      assert.deepEqual(empty.shape, [0, 28, 28]);
      assert.equal(empty.data.length, 0);

      assertNpyError(
        () => decodeNpy(Deno.readFileSync(`${dir}/be.npy`)),
        "unsupported dtype '>f4'",
      );
      assertNpyError(
        () => decodeNpy(Deno.readFileSync(`${dir}/c8.npy`)),
        "unsupported dtype '<c8'",
      );
      assertNpyError(
        () => decodeNpy(Deno.readFileSync(`${dir}/bool.npy`)),
        "unsupported dtype '|b1'",
      );
      assertNpyError(
        () => decodeNpy(Deno.readFileSync(`${dir}/fortran.npy`)),
        "Fortran-order",
        "C order",
      );
    }),
});

// ---------------------------------------------------------------------------------------------
// Hand-built headers: every accepted spelling, then every rejection

const F32_2x3 = bytesOf(new Float32Array([0, 0.5, 1, 0.25, 0.75, 0.125]));

Deno.test("decodeNpy accepts header spellings numpy can produce", () => {
  const cases: [string, number[]][] = [
    ["{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", [2, 3]],
    ["{'shape': (2,3), 'fortran_order': False, 'descr': '<f4'}", [2, 3]],
    ["{'descr':'<f4','fortran_order':False,'shape':(6,)}", [6]],
  ];
  for (const [header, shape] of cases) {
    const decoded = decodeNpy(rawNpy(header, F32_2x3));
    assert.deepEqual(decoded.shape, shape, header);
    assert.deepEqual(Array.from(npyValues(decoded)), [0, 0.5, 1, 0.25, 0.75, 0.125]);
  }
  // '<u1' and '<i1' are the same types as '|u1' and '|i1'.
  const u = decodeNpy(
    rawNpy("{'descr': '<u1', 'fortran_order': False, 'shape': (3,), }", Uint8Array.of(1, 2, 255)),
  );
  assert.equal(u.descr, "|u1");
  assert.deepEqual(Array.from(npyValues(u)), [1, 2, 255]);
  const i = decodeNpy(
    rawNpy(
      "{'descr': '<i1', 'fortran_order': False, 'shape': (3,), }",
      Uint8Array.of(1, 0x80, 0xff),
    ),
  );
  assert.equal(i.descr, "|i1");
  assert.deepEqual(Array.from(npyValues(i)), [1, -128, -1]);
});

const GOOD_HEADER = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";

Deno.test("decodeNpy: bad magic string", () => {
  const good = rawNpy(GOOD_HEADER, F32_2x3);
  const bad = good.slice();
  bad[1] = 0x4f; // \x93OUMPY
  assertNpyError(() => decodeNpy(bad), "not a .npy file", "bad magic");
  assertNpyError(() => decodeNpy(new Uint8Array(0)), "bad magic");
  assertNpyError(() => decodeNpy(good.subarray(0, 8)), "bad magic");
  assertNpyError(() => decodeNpy(new TextEncoder().encode("P5 28 28 255\n")), "bad magic");
});

Deno.test("decodeNpy: truncated data names the shape and both byte counts", () => {
  const bytes = rawNpy(GOOD_HEADER, F32_2x3);
  const e = assertNpyError(() => decodeNpy(bytes.subarray(0, bytes.length - 4)), "truncated");
  assert.ok(e.message.includes("(2, 3)"), e.message);
  assert.ok(e.message.includes("24"), e.message);
  assert.ok(e.message.includes("20"), e.message);
  const preamble = bytes.length - F32_2x3.length;
  assertNpyError(() => decodeNpy(bytes.subarray(0, preamble)), "truncated", "file holds 0");
});

Deno.test("decodeNpy: trailing bytes", () => {
  const bytes = rawNpy(GOOD_HEADER, new Uint8Array([...F32_2x3, 0, 0, 0, 0, 1]));
  assertNpyError(() => decodeNpy(bytes), "trailing bytes", "24", "29");
});

Deno.test("decodeNpy: truncated header", () => {
  const bytes = rawNpy(GOOD_HEADER, F32_2x3);
  assertNpyError(() => decodeNpy(bytes.subarray(0, 40)), "truncated .npy header");
  const v2 = rawNpy(GOOD_HEADER, F32_2x3, 2);
  assertNpyError(() => decodeNpy(v2.subarray(0, 11)), "truncated .npy header");
});

Deno.test("decodeNpy: Fortran order", () => {
  const header = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }";
  assertNpyError(() => decodeNpy(rawNpy(header, F32_2x3)), "Fortran-order", "not supported");
});

Deno.test("decodeNpy: unsupported dtypes are named", () => {
  for (const descr of [">f4", "<c8", ">i4", "|b1", "<f2", "<U3", "|O", "<M8[s]"]) {
    const header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (6,), }`;
    assertNpyError(() => decodeNpy(rawNpy(header, F32_2x3)), `unsupported dtype '${descr}'`);
  }
});

Deno.test("decodeNpy: bad header", () => {
  const headers = [
    "{'descr': '<f4', 'fortran_order': False, }", // no shape
    "{'fortran_order': False, 'shape': (6,), }", // no descr
    "{'descr': '<f4', 'shape': (6,), }", // no fortran_order
    "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,), }", // structured
    "not a dict at all",
    "",
  ];
  for (const header of headers) {
    assertNpyError(() => decodeNpy(rawNpy(header, F32_2x3)), "bad .npy header");
  }
  for (const dims of ["2, -3", "2, x", "2.5, 3"]) {
    const header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims}), }`;
    assertNpyError(() => decodeNpy(rawNpy(header, F32_2x3)), /bad shape|bad \.npy header/);
  }
});

Deno.test("decodeNpy: unsupported version", () => {
  const bytes = rawNpy(GOOD_HEADER, F32_2x3);
  bytes[6] = 4;
  assertNpyError(() => decodeNpy(bytes), "unsupported .npy version 4.0");
  bytes[6] = 0;
  assertNpyError(() => decodeNpy(bytes), "unsupported .npy version 0.0");
});

Deno.test("NpyError is an Error with its own name", () => {
  const e = assertNpyError(() => decodeNpy(new Uint8Array(3)), "bad magic");
  assert.ok(e instanceof Error);
  assert.equal(e.name, "NpyError");
});
