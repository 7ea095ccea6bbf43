// Fixture writers shared by the loader tests: IDX, CIFAR-10 and .npy bytes built from known
// arrays, gzip, temp dirs, and an assertion for one-line file errors.

import assert from "node:assert/strict";
export { bytesOf, npyBytes, withTempDir } from "../../_shared.ts";
import { SiaError } from "../../../core/errors.ts";

/** An IDX file of unsigned bytes: magic (0, 0, 0x08, rank), big-endian dims, then the data. */
export function idxBytes(
  dims: readonly number[],
  data: ArrayLike<number>,
  dtype = 0x08,
): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out.set([0, 0, dtype, dims.length]);
  const view = new DataView(out.buffer);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

/** Deterministic pixel bytes covering 0..255. */
export function pixelBytes(n: number, salt = 0): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 37 + salt * 11 + ((i * i) >> 3)) % 256);
}

export async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** CIFAR-10 pixel value of record r, channel c, row y, column x (a fixed, distinctive formula). */
export function cifarPixel(r: number, c: number, y: number, x: number): number {
  return (r * 53 + c * 101 + y * 7 + x * 3 + ((x * y) >> 2)) % 256;
}

/** CIFAR-10 records: label byte, then 1024 red, 1024 green, 1024 blue, each row-major 32x32. */
export function cifarBytes(labels: readonly number[], salt = 0): Uint8Array {
  const out = new Uint8Array(labels.length * 3073);
  labels.forEach((label, r) => {
    const base = r * 3073;
    out[base] = label;
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          out[base + 1 + c * 1024 + y * 32 + x] = cifarPixel(r + salt, c, y, x);
        }
      }
    }
  });
  return out;
}

/**
 * Asserts the promise rejects with a SiaError whose message starts with `path: ` and contains
 * every fragment; returns the message.
 */
export async function assertFileError(
  promise: Promise<unknown>,
  path: string,
  ...fragments: (string | RegExp)[]
): Promise<string> {
  let caught: unknown = null;
  try {
    await promise;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught !== null, "expected a rejection, the call succeeded");
  assert.ok(caught instanceof SiaError, `expected a SiaError, got ${caught}`);
  const message = caught.message;
  assert.ok(
    message.startsWith(`${path}: `),
    `${JSON.stringify(message)} does not start with ${path}`,
  );
  assert.ok(!message.includes("\n"), `message is one line: ${JSON.stringify(message)}`);
  for (const f of fragments) {
    if (typeof f === "string") {
      assert.ok(message.includes(f), `${JSON.stringify(message)} lacks ${JSON.stringify(f)}`);
    } else {
      assert.match(message, f);
    }
  }
  return message;
}

/** The float32 a loader stores for byte b (b / 255 rounded to float32). */
export function unit(b: number): number {
  return Math.fround(b / 255);
}
