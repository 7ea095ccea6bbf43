// Reading a data file into memory, with transparent gzip and one-line errors that name the file.

import { fileError } from "../../core/errors.ts";

function describeFsError(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "no such file or directory";
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (e instanceof Deno.errors.IsADirectory) return "is a directory, expected a file";
  return e instanceof Error ? e.message : String(e);
}

/** The file's bytes; gzip (by its magic bytes, whatever the name) is decompressed. */
export async function readBytes(path: string): Promise<Uint8Array> {
  let raw: Uint8Array;
  try {
    raw = await Deno.readFile(path);
  } catch (e) {
    throw fileError(path, describeFsError(e));
  }
  if (raw.length < 2 || raw[0] !== 0x1f || raw[1] !== 0x8b) return raw;
  try {
    const stream = new Blob([raw as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
      new DecompressionStream("gzip"),
    );
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (e) {
    throw fileError(path, `corrupt or truncated gzip data (${e instanceof Error ? e.message : e})`);
  }
}

/** stat, or null when the path does not exist. */
export async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw fileError(path, describeFsError(e));
  }
}

export async function listDir(path: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(path)) names.push(entry.name);
  } catch (e) {
    throw fileError(path, describeFsError(e));
  }
  return names.sort();
}
