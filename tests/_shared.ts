// Helpers every test folder uses: temporary directories, directory listings, real numpy, and
// hand-built .npy bytes (for headers encodeNpy would never write).

import assert from "node:assert/strict";

const decoder = new TextDecoder();

export async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "sia-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** File names in a directory, sorted. */
export async function listNames(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) out.push(entry.name);
  return out.sort();
}

/**
 * The first python that imports all of `modules`, or null. The bare `python3` on PATH may be a
 * pyenv or venv interpreter without numpy while Debian's packages (python3-numpy,
 * python3-torch, which .ci/run installs) live under /usr/bin/python3, so both are tried: a test
 * that silently skipped its numpy cross-check because PATH pointed elsewhere would prove nothing.
 */
export async function findPython(modules: string[]): Promise<string | null> {
  for (const candidate of ["python3", "/usr/bin/python3"]) {
    try {
      const out = await new Deno.Command(candidate, {
        args: ["-c", `import ${modules.join(", ")}`],
        stdout: "null",
        stderr: "null",
      }).output();
      if (out.success) return candidate;
    } catch {
      // Not installed.
    }
  }
  return null;
}

/** A python with numpy (null when there is none: numpy cross-checks are then skipped). */
export const NUMPY_PYTHON = await findPython(["numpy"]);
export const HAS_NUMPY = NUMPY_PYTHON !== null;

/** Runs a python script with numpy (arguments in sys.argv[1:]) and returns its stdout. */
export async function python(script: string, ...args: string[]): Promise<string> {
  assert.ok(NUMPY_PYTHON, "no python3 with numpy");
  const out = await new Deno.Command(NUMPY_PYTHON, {
    args: ["-c", script, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, `python3 failed:\n${decoder.decode(out.stderr)}`);
  return decoder.decode(out.stdout);
}

/** A version 1.0 .npy file with any descr, shape and raw data; `header` replaces the dict. */
export function npyBytes(
  descr: string,
  shape: readonly number[],
  data: Uint8Array,
  options: { fortran?: boolean; header?: string } = {},
): Uint8Array {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(", ");
  let header = options.header ??
    `{'descr': '${descr}', 'fortran_order': ${
      options.fortran ? "True" : "False"
    }, 'shape': (${dims}), }`;
  header += " ".repeat((64 - ((10 + header.length + 1) % 64)) % 64) + "\n";
  const out = new Uint8Array(10 + header.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  out.set(data, 10 + header.length);
  return out;
}

export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * max |got - want| / max |want|, lengths checked; below `absoluteBelow` the scale is treated as
 * zero and the error is absolute (values that are zero in theory and float noise on both sides).
 */
export function maxRelativeError(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  absoluteBelow = 0,
): number {
  assert.equal(got.length, want.length);
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]));
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
  }
  return scale < absoluteBelow || scale === 0 ? diff : diff / scale;
}
