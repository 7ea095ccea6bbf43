// manifest.json: everything needed to know what a run did and to redo it: the resolved config,
// the seed, the versions of sia, Deno and every npm dependency, counts, files and timings.

import denoJson from "../deno.json" with { type: "json" };
import { atomicWriteText } from "../core/files.ts";

export function versions(): Record<string, string> {
  const deps: Record<string, string> = {};
  for (const spec of Object.values(denoJson.imports as Record<string, string>)) {
    const match = /^npm:(@?[^@]+)@(.+)$/.exec(spec);
    if (match) deps[match[1]] = match[2];
  }
  return {
    sia: denoJson.version,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    ...deps,
  };
}

export async function writeManifest(dir: string, manifest: Record<string, unknown>): Promise<void> {
  await atomicWriteText(
    `${dir}/manifest.json`,
    JSON.stringify({ versions: versions(), ...manifest }, null, 2) + "\n",
  );
}
