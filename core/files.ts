// Output files are written to a temporary name in the same directory and renamed into place, so a
// crash, a full disk or Ctrl-C never leaves a half-written file under a final name.

import { SiaError } from "./errors.ts";

function reason(e: unknown): string {
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (e instanceof Deno.errors.NotFound) return "no such file or directory";
  if (e instanceof Deno.errors.NotADirectory) return "a parent is a file, not a directory";
  if (e instanceof Deno.errors.AlreadyExists) return "exists and is not a directory";
  if (e instanceof Error && /ENOSPC|No space left/i.test(e.message)) {
    return "no space left on the device";
  }
  return e instanceof Error ? e.message : String(e);
}

function tempName(path: string): string {
  const slash = path.lastIndexOf("/");
  return `${path.slice(0, slash + 1)}.${path.slice(slash + 1)}.${
    crypto.randomUUID().slice(0, 8)
  }.tmp`;
}

/**
 * Files that belong together (a shard's images and labels): every one is written to a temporary
 * name first, and they are renamed into place only when all are complete, so a failed write (a
 * full disk) leaves none of them behind under a final name, nor any temporary file.
 */
export async function atomicWriteAll(
  files: readonly { readonly path: string; readonly bytes: Uint8Array }[],
): Promise<void> {
  const temps = files.map((f) => tempName(f.path));
  const renamed: string[] = [];
  let current = files[0]?.path ?? "";
  try {
    for (const [i, f] of files.entries()) {
      current = f.path;
      await Deno.writeFile(temps[i], f.bytes);
    }
    for (const [i, f] of files.entries()) {
      current = f.path;
      await Deno.rename(temps[i], f.path);
      renamed.push(f.path);
    }
  } catch (e) {
    await Promise.all([...temps, ...renamed].map((p) => Deno.remove(p).catch(() => {})));
    throw new SiaError(`${current}: could not write (${reason(e)})`);
  }
}

export function atomicWrite(path: string, bytes: Uint8Array): Promise<void> {
  return atomicWriteAll([{ path, bytes }]);
}

export function atomicWriteText(path: string, text: string): Promise<void> {
  return atomicWrite(path, new TextEncoder().encode(text));
}

/**
 * Checks, without creating anything, that `dir` is a directory or can be made one: the nearest
 * existing ancestor must be a directory we can create files in.
 */
export async function checkWritableDir(dir: string): Promise<void> {
  let probe = dir.replace(/\/+$/, "") || "/";
  for (;;) {
    let info: Deno.FileInfo | null = null;
    try {
      info = await Deno.stat(probe);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        throw new SiaError(`${dir}: output directory unusable (${reason(e)})`);
      }
    }
    if (info) {
      if (!info.isDirectory) {
        throw new SiaError(
          `${dir}: output directory unusable (${probe} is a file, not a directory)`,
        );
      }
      try {
        const temp = await Deno.makeTempFile({ dir: probe, prefix: ".sia-probe-" });
        await Deno.remove(temp);
      } catch (e) {
        throw new SiaError(`${dir}: output directory not writable (${probe}: ${reason(e)})`);
      }
      return;
    }
    const parent = probe.includes("/") ? probe.slice(0, probe.lastIndexOf("/")) || "/" : ".";
    if (parent === probe) return;
    probe = parent;
  }
}

/** Creates `dir` and removes the files a previous run left there (`names` tests each file name). */
export async function prepareOutDir(dir: string, stale: (name: string) => boolean): Promise<void> {
  try {
    await Deno.mkdir(dir, { recursive: true });
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile && stale(entry.name)) await Deno.remove(`${dir}/${entry.name}`);
    }
  } catch (e) {
    throw new SiaError(`${dir}: could not prepare the output directory (${reason(e)})`);
  }
}

/** sha-256 of `bytes`, 64 hex digits: the content hash recorded beside models and pools. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes.slice()));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}
