// Helpers for tests that drive sia's command line as a subprocess: run main.ts and capture its
// output, temp dirs, a content snapshot of a directory tree (to prove a failed run wrote
// nothing), numpy through python3, and .npy / IDX fixture bytes built by hand.

import assert from "node:assert/strict";
export {
  bytesOf,
  findPython,
  HAS_NUMPY,
  npyBytes,
  NUMPY_PYTHON,
  python,
  withTempDir,
} from "./_shared.ts";

/** The repository root (this file lives in tests/). */
export const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
export const MAIN = `${REPO}/main.ts`;

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const decoder = new TextDecoder();

/** `deno run -A main.ts ...args` (or another script) from the repository root, stderr piped. */
function cli(
  args: readonly string[],
  stdout: "piped" | "null" = "piped",
  script = MAIN,
): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    cwd: REPO,
    stdin: "null",
    stdout,
    stderr: "piped",
    env: { NO_COLOR: "1" },
  });
}

/** Runs `deno run -A main.ts ...args` from the repository root and waits for it. */
export async function runCli(args: readonly string[]): Promise<CliResult> {
  const out = await cli(args).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Starts main.ts (or another script) without waiting (for signals); stdout and stderr are piped. */
export function spawnCli(args: readonly string[], script = MAIN): Deno.ChildProcess {
  return cli(args, "piped", script).spawn();
}

export interface Server {
  readonly url: string;
  readonly pid: number;
  /** Everything it wrote on stderr so far. */
  stderr(): string;
  /** Ctrl-C, then its exit status. */
  stop(signal?: Deno.Signal): Promise<number>;
}

/**
 * Starts a main.ts server command (serve, view, pipeline --view) and resolves once its stderr
 * shows `listening` (group 1: the URL); stop() sends Ctrl-C (or SIGTERM) and waits for the exit.
 */
export async function spawnServer(args: readonly string[], listening: RegExp): Promise<Server> {
  const child = cli(args, "null").spawn();
  let text = "";
  const decoder = new TextDecoder();
  let found: (url: string) => void = () => {};
  const url = new Promise<string>((resolve) => (found = resolve));
  // Keeps reading stderr for the server's whole life, so a full pipe never blocks it.
  const drained = (async () => {
    for await (const chunk of child.stderr) {
      text += decoder.decode(chunk, { stream: true });
      const hit = listening.exec(text);
      if (hit) found(hit[1]);
    }
  })();
  const exited = child.status.then((s) => s.code);
  const first = await Promise.race([url, exited.then((code) => ({ code }))]);
  if (typeof first !== "string") {
    await drained;
    throw new Error(`${args[0]} exited with ${first.code} before listening:\n${text}`);
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

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Every entry under `root` (relative path -> kind, size, mtime and content hash for files), so
 * two snapshots are equal only if nothing was created, removed, rewritten or touched.
 */
export async function snapshot(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(dir: string, prefix: string): Promise<void> {
    for await (const entry of Deno.readDir(dir)) {
      const path = `${dir}/${entry.name}`;
      const rel = prefix + entry.name;
      const info = await Deno.lstat(path);
      if (info.isDirectory) {
        out[rel + "/"] = "dir";
        await walk(path, rel + "/");
      } else if (info.isFile) {
        out[rel] = `file ${info.size} ${info.mtime?.getTime()} ${await sha256(
          await Deno.readFile(path),
        )}`;
      } else {
        out[rel] = "other";
      }
    }
  }
  await walk(root, "");
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}

/** Asserts a failed run's contract: non-zero exit, one `sia: ` line on stderr, no stack trace. */
export function assertOneLineError(
  result: CliResult,
  expectedCode: number,
  ...fragments: (string | RegExp)[]
): string {
  const shown = `exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`;
  assert.equal(result.code, expectedCode, `wrong exit status\n${shown}`);
  assert.equal(result.stdout, "", `nothing on stdout\n${shown}`);
  assert.ok(result.stderr.endsWith("\n"), `stderr ends with a newline\n${shown}`);
  const lines = result.stderr.slice(0, -1).split("\n");
  assert.equal(lines.length, 1, `stderr is exactly one line\n${shown}`);
  const line = lines[0];
  assert.ok(line.startsWith("sia: "), `stderr starts with "sia: "\n${shown}`);
  assert.doesNotMatch(line, /\bat .*:\d+:\d+|internal error|--debug/, `no stack trace\n${shown}`);
  for (const f of fragments) {
    if (typeof f === "string") {
      assert.ok(line.includes(f), `stderr lacks ${JSON.stringify(f)}\n${shown}`);
    } else assert.match(line, f, shown);
  }
  return line;
}

// ---------------------------------------------------------------------------------------------
// numpy

// ---------------------------------------------------------------------------------------------
// Fixture bytes

/** An IDX file of unsigned bytes: magic (0, 0, 0x08, rank), big-endian dims, then `data`. */
export function idxBytes(dims: readonly number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out.set([0, 0, 0x08, dims.length]);
  const view = new DataView(out.buffer);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

/** Float32 pixels on [0, 1] for n images of h x w, deterministic. */
export function unitPixels(count: number): Float32Array {
  return Float32Array.from({ length: count }, (_, i) => ((i * 37 + ((i * i) >> 3)) % 256) / 255);
}
