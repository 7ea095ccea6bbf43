// The .npy format (numpy's NEP 1): magic, version, a Python-dict header padded to 64 bytes, then
// the raw C-order array. Pure functions on bytes, shared by the loader and the shard writer.

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

export type NpyDescr = "|u1" | "<f4" | "<i4" | "<i8" | "|i1" | "<i2" | "<u2" | "<f8";
const SUPPORTED: readonly NpyDescr[] = ["|u1", "<f4", "<i4", "<i8", "|i1", "<i2", "<u2", "<f8"];
const ITEM_SIZE: Record<NpyDescr, number> = {
  "|u1": 1,
  "|i1": 1,
  "<i2": 2,
  "<u2": 2,
  "<i4": 4,
  "<f4": 4,
  "<i8": 8,
  "<f8": 8,
};

export interface NpyArray {
  readonly descr: NpyDescr;
  readonly shape: number[];
  /** Little-endian C-order values, aligned so a typed array view works. */
  readonly data: Uint8Array;
}

/** Parses a .npy file; the problem is returned as a message for the caller to attach the path. */
export function decodeNpy(bytes: Uint8Array): NpyArray {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new NpyError("not a .npy file (bad magic string)");
  }
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLength: number;
  let start: number;
  if (major === 1) {
    headerLength = view.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new NpyError("truncated .npy header");
    headerLength = view.getUint32(8, true);
    start = 12;
  } else {
    throw new NpyError(`unsupported .npy version ${major}.${bytes[7]}`);
  }
  if (bytes.length < start + headerLength) throw new NpyError("truncated .npy header");
  const header = new TextDecoder("latin1").decode(bytes.subarray(start, start + headerLength));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new NpyError(`bad .npy header ${JSON.stringify(header.trim())}`);
  }
  const normalized = (descr === "<u1" ? "|u1" : descr === "<i1" ? "|i1" : descr) as NpyDescr;
  if (!SUPPORTED.includes(normalized)) throw new NpyError(`unsupported dtype '${descr}'`);
  if (fortran === "True") {
    throw new NpyError("Fortran-order arrays are not supported (save with C order)");
  }
  const entries = shapeText.split(",").map((s) => s.trim());
  // A 1-tuple is written "(n,)": only a trailing empty entry is allowed.
  if (entries.length > 1 && entries[entries.length - 1] === "") entries.pop();
  const shape = entries.length === 1 && entries[0] === ""
    ? []
    : entries.map((s) => (s === "" ? NaN : Number(s)));
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new NpyError(`bad shape (${shapeText}) in .npy header`);
  }
  const count = shape.reduce((a, b) => a * b, 1);
  const begin = start + headerLength;
  const expected = count * ITEM_SIZE[normalized];
  if (bytes.length - begin !== expected) {
    const what = bytes.length - begin < expected ? "truncated" : "has trailing bytes";
    throw new NpyError(
      `${what}: shape (${shape.join(", ")}) needs ${expected} data bytes, file holds ${
        bytes.length - begin
      }`,
    );
  }
  // A fresh copy is always aligned for Float32Array / Int32Array views.
  return { descr: normalized, shape, data: bytes.slice(begin) };
}

export class NpyError extends Error {
  override name = "NpyError";
}

/** The values as numbers, whatever the stored integer or float type. */
export function npyValues(array: NpyArray): Float32Array | Float64Array | Int32Array | Uint8Array {
  const buf = array.data.buffer;
  switch (array.descr) {
    case "|u1":
      return array.data;
    case "|i1":
      return Int32Array.from(new Int8Array(buf));
    case "<i2":
      return Int32Array.from(new Int16Array(buf));
    case "<u2":
      return Int32Array.from(new Uint16Array(buf));
    case "<i4":
      return new Int32Array(buf);
    case "<i8":
      return Int32Array.from(new BigInt64Array(buf), (v) => {
        if (v > 2147483647n || v < -2147483648n) {
          throw new NpyError(`int64 value ${v} does not fit int32`);
        }
        return Number(v);
      });
    case "<f4":
      return new Float32Array(buf);
    case "<f8":
      return new Float64Array(buf);
  }
}

/** Encodes a float32 or int32 array as a version 1.0 .npy file. */
export function encodeNpy(values: Float32Array | Int32Array, shape: readonly number[]): Uint8Array {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== values.length) throw new Error(`npy: ${values.length} values for shape [${shape}]`);
  const descr = values instanceof Float32Array ? "<f4" : "<i4";
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(", ");
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${dims}), }`;
  const unpadded = 10 + header.length + 1;
  header += " ".repeat((64 - (unpadded % 64)) % 64) + "\n";
  const out = new Uint8Array(10 + header.length + values.byteLength);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), 10 + header.length);
  return out;
}
