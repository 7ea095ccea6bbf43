// Experiment cells on a Redis Streams queue, each test against its own redis-server on a loopback
// port: two workers give the bytes of a local run (each seed's pool made once over both), a worker
// killed mid-cell has its cell finished by the other and counted once, a Redis restart mid-run
// (append-only file on) loses no finished result, a cell that always throws ends in the
// dead-letter stream and the run names it, and a wrong password or a queue whose config hash
// differs is refused with one line.

import assert from "node:assert/strict";
import { createClient } from "redis";
import { SiaError } from "../../../core/errors.ts";
import { runExperiment } from "../../../pipeline/experiments/run.ts";
import { runQueued } from "../../../pipeline/queue/coordinator.ts";
import type { QueueStats } from "../../../pipeline/queue/coordinator.ts";
import { redactUrl } from "../../../pipeline/queue/redis.ts";
import { assertOneLineError, REPO, runCli, withTempDir } from "../../_cli.ts";
import { listNames } from "../../_shared.ts";
import { startRedis } from "./_redis.ts";
import type { RedisServer } from "./_redis.ts";
import { toy } from "./_toy.ts";
import type { ToyConfig } from "./_toy.ts";

const TOY = `${REPO}/tests/pipeline/queue/_toy.ts`;
const decoder = new TextDecoder();

interface Worker {
  readonly child: Deno.ChildProcess;
  /** Everything the worker wrote on stderr so far. */
  log(): string;
  /** Resolves once its log matches. */
  until(pattern: RegExp): Promise<void>;
  /** Stops it with SIGTERM and resolves to its exit status. */
  stop(): Promise<number>;
}

function startWorker(url: string, name: string): Worker {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", TOY, "--redis", url, "--name", name],
    cwd: REPO,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let text = "";
  const waiters: { pattern: RegExp; resolve: () => void }[] = [];
  (async () => {
    for await (const chunk of child.stderr) {
      text += decoder.decode(chunk);
      for (const w of waiters.splice(0)) {
        if (w.pattern.test(text)) w.resolve();
        else waiters.push(w);
      }
    }
  })();
  return {
    child,
    log: () => text,
    until: (pattern) =>
      pattern.test(text)
        ? Promise.resolve()
        : new Promise((resolve) => waiters.push({ pattern, resolve })),
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      return (await child.status).code;
    },
  };
}

function toyRaw(
  dir: string,
  toy: Partial<ToyConfig["toy"]> = {},
  queue: Record<string, unknown> = {},
) {
  return {
    experiment: "toy",
    out: { dir },
    toy: { seeds: [0, 1], ms: 300, fail: [], offset: 0, pool: 64, ...toy },
    queue: { heartbeat: 0.2, maxDeliveries: 2, ...queue },
  };
}

const quiet = { log: () => {}, print: () => {} };

/** Runs the toy's cells on the queue with the coordinator in this process. */
function coordinate(server: RedisServer, raw: ReturnType<typeof toyRaw>, log: string[] = []) {
  return runQueued(toy, toy.resolve(raw), raw, {
    url: server.url,
    log: (line) => log.push(line),
    print: () => {},
    logEvery: 1,
  });
}

/** The stored cells of a directory without their wall times: what must match a local run. */
async function results(dir: string): Promise<string[]> {
  const names = await listNames(`${dir}/cells`);
  return await Promise.all(names.map(async (name) => {
    const { seconds: _, ...cell } = JSON.parse(await Deno.readTextFile(`${dir}/cells/${name}`));
    return `${name} ${JSON.stringify(cell)}`;
  }));
}

async function withRedis(
  options: Parameters<typeof startRedis>[0],
  fn: (server: RedisServer, dir: string) => Promise<void>,
): Promise<void> {
  const server = await startRedis(options);
  try {
    await withTempDir((dir) => fn(server, dir));
  } finally {
    await server.close();
  }
}

Deno.test("two workers give the bytes of a local run; each pool is made once over both", async () => {
  await withRedis({}, async (server, dir) => {
    const shared = `${dir}/shared`;
    await Deno.mkdir(shared);
    // Each pool (2 KiB) is over inlineBytes: it goes through the shared directory.
    const raw = toyRaw(`${dir}/queued`, { seeds: [0, 1, 2], pool: 512 }, {
      inlineBytes: 1024,
      shared,
    });
    await runExperiment(toy, toy.resolve({ ...raw, out: { dir: `${dir}/local` } }), quiet);
    const workers = [startWorker(server.url, "w1"), startWorker(server.url, "w2")];
    let stats: QueueStats;
    try {
      stats = await coordinate(server, raw);
    } finally {
      assert.deepEqual(await Promise.all(workers.map((w) => w.stop())), [130, 130]);
    }
    assert.equal(stats.ran, 6);
    assert.equal(
      await Deno.readTextFile(`${dir}/queued/toy.json`),
      await Deno.readTextFile(`${dir}/local/toy.json`),
    );
    assert.deepEqual(await results(`${dir}/queued`), await results(`${dir}/local`));
    const logs = workers.map((w) => w.log()).join("");
    for (const seed of [0, 1, 2]) {
      assert.equal(logs.split(`[toy] making pool ${seed}\n`).length - 1, 1, logs);
    }
    assert.ok(workers.every((w) => /\(stored\)/.test(w.log())), "both workers ran cells");
    assert.equal((await listNames(shared)).length, 3);
  });
});
