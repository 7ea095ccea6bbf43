// A `serve` subprocess for the stream tests, on 127.0.0.1 and a port the OS picks (--port 0, read
// back from its "serving on" line; tests/_cli.ts spawnServer).

import { decodeFrame, readFrames } from "../../../core/frames.ts";
import type { Frame } from "../../../core/frames.ts";
import { spawnServer } from "../../_cli.ts";
import type { Server } from "../../_cli.ts";

export type { Server } from "../../_cli.ts";

export function startServer(configPath: string, ...extra: string[]): Promise<Server> {
  return spawnServer(
    ["serve", "--config", configPath, "--port", "0", ...extra],
    /serving on (http:\/\/127\.0\.0\.1:\d+)\//,
  );
}

/** VmHWM and VmRSS of a process, in MiB (Linux). */
export async function memory(pid: number): Promise<{ peak: number; rss: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const field = (name: string) =>
    Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)![1]) / 1024;
  return { peak: field("VmHWM"), rss: field("VmRSS") };
}

/** The frames of a response body, decoded. */
export async function readAll(response: Response): Promise<Frame[]> {
  const frames: Frame[] = [];
  for await (const bytes of readFrames(response.body!)) frames.push(decodeFrame(bytes));
  return frames;
}
