// A `serve` subprocess for the stream tests, on 127.0.0.1 and a port the OS picks (--port 0, read
// back from its "serving on" line); stop() sends Ctrl-C (or SIGTERM) and waits for it to exit.

import { decodeFrame, readFrames } from "../../../core/frames.ts";
import type { Frame } from "../../../core/frames.ts";
import { MAIN, REPO } from "../../_cli.ts";

export interface Server {
  readonly url: string;
  readonly pid: number;
  /** Everything it wrote on stderr so far. */
  stderr(): string;
  /** Ctrl-C, then its exit status. */
  stop(signal?: Deno.Signal): Promise<number>;
}

export async function startServer(configPath: string, ...extra: string[]): Promise<Server> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "serve", "--config", configPath, "--port", "0", ...extra],
    cwd: REPO,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let text = "";
  const decoder = new TextDecoder();
  let listening: (url: string) => void = () => {};
  const url = new Promise<string>((resolve) => (listening = resolve));
  // Keeps reading stderr for the server's whole life, so a full pipe never blocks it.
  const drained = (async () => {
    for await (const chunk of child.stderr) {
      text += decoder.decode(chunk, { stream: true });
      const hit = /serving on (http:\/\/127\.0\.0\.1:\d+)\//.exec(text);
      if (hit) listening(hit[1]);
    }
  })();
  const exited = child.status.then((s) => s.code);
  const first = await Promise.race([url, exited.then((code) => ({ code }))]);
  if (typeof first !== "string") {
    await drained;
    throw new Error(`serve exited with ${first.code} before listening:\n${text}`);
  }
  return {
    url: first,
    pid: child.pid,
    stderr: () => text,
    /** Stops the server as a user (SIGINT) or a scheduler (SIGTERM) would; resolves to its exit code. */
    async stop(signal: Deno.Signal = "SIGINT") {
      try {
        child.kill(signal);
      } catch {
        // Already gone.
      }
      const code = await exited;
      await drained;
      return code;
    },
  };
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
