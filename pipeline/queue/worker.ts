// `sia worker --redis URL`: joins a queue's consumer group and runs its cells one at a time with
// the local runner's code (runCell), so a cell gives the same bytes here as in a local run.
//
// One cell: take an entry (first one a dead worker left: pending longer than the visibility
// timeout, XAUTOCLAIM; else a new one, XREADGROUP), heartbeat while it runs (re-claiming the
// entry resets its idle time, so it is not taken from a live worker), store the result under the
// cell's key (SET NX: a cell run twice counts once), announce it on the done stream, then
// acknowledge and delete the entry. A cell that throws is handed back at once for another try;
// after maxDeliveries deliveries it goes to the dead-letter stream with its error. Ctrl-C or
// SIGTERM hands the entry in flight back the same way and exits 130.

import { cellLabel } from "../experiments/experiment.ts";
import type { CellContext, Experiment } from "../experiments/experiment.ts";
import { memoCache, runCell } from "../experiments/run.ts";
import { Artifacts } from "./artifacts.ts";
import type { CellEntry, Joined, QueueKeys, RemoteResult } from "./protocol.ts";
import {
  GROUP,
  joinMeta,
  queueKeys,
  readEntry,
  siaVersion,
  VISIBILITY_HEARTBEATS,
} from "./protocol.ts";
import { connectRedis, redactUrl, retrying } from "./redis.ts";
import type { Redis, StreamReply } from "./redis.ts";

export interface WorkerOptions {
  readonly url: string;
  /** Queue name (keys sia:<queue>:*). */
  readonly queue: string;
  /** Consumer name, unique among the workers of a queue. */
  readonly name: string;
  readonly experiments: Readonly<Record<string, Experiment>>;
  readonly log: (line: string) => void;
  readonly stop: Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A consumer name no other worker has: host, process id, a random suffix. */
export function defaultWorkerName(): string {
  return `${Deno.hostname()}-${Deno.pid}-${crypto.randomUUID().slice(0, 4)}`;
}

/**
 * Serves the queue until stopped; resolves to the exit status (130). Throws SiaError when the
 * queue is refused (other sia version or config hash) or Redis is unreachable.
 */
export async function runWorker(options: WorkerOptions): Promise<number> {
  const { log, name } = options;
  const keys = queueKeys(options.queue);
  const client = await connectRedis(options.url, { log });
  let stopped = false;
  options.stop.then(() => (stopped = true));
  const call = <T>(command: () => Promise<T>) => retrying(client, command);
  try {
    while (!stopped) {
      const joined = await waitForRun(client, keys, options);
      if (!joined) break;
      await serveRun(client, keys, joined, options, () => stopped, call);
    }
    log(`[sia] worker ${name}: stopped`);
    return 130;
  } finally {
    await client.close().catch(() => {});
  }
}

/** The queue's run once a coordinator has published one (null when stopped while waiting). */
async function waitForRun(
  client: Redis,
  keys: QueueKeys,
  options: WorkerOptions,
): Promise<Joined | null> {
  let told = false;
  for (;;) {
    const meta = await retrying(client, () => client.hGetAll(keys.meta));
    if (meta.run) return await joinMeta(keys.name, meta, options.experiments);
    if (!told) {
      options.log(`[sia] waiting for a run on queue ${keys.name} at ${redactUrl(options.url)}`);
    }
    told = true;
    if (await Promise.race([options.stop.then(() => true), sleep(1000).then(() => false)])) {
      return null;
    }
  }
}

/** Runs the cells of one run until stopped or the queue moves to another run. */
async function serveRun(
  client: Redis,
  keys: QueueKeys,
  joined: Joined,
  options: WorkerOptions,
  stopped: () => boolean,
  call: <T>(command: () => Promise<T>) => Promise<T>,
): Promise<void> {
  const { experiment, config, run } = joined;
  const { log, name } = options;
  const visibilityMs = VISIBILITY_HEARTBEATS * joined.heartbeatMs;
  log(
    `[sia] worker ${name} on ${
      redactUrl(options.url)
    }, queue ${keys.name}: joined run ${run} of ${experiment.name}, preparing`,
  );
  const shared = await experiment.prepare(config, log);
  await call(() => ensureGroup(client, keys.cells));
  const artifacts = new Artifacts(client, keys, run, joined, name, log);
  const local = memoCache(4);
  const context: CellContext<unknown> = {
    shared,
    tick: () => {},
    stop: options.stop,
    log,
    memo: (id, make, codec) =>
      local(id, codec ? () => artifacts.obtain(id, make, codec, options.stop) : make),
  };
  while (!stopped()) {
    const entry = await nextEntry(client, keys, name, visibilityMs, call);
    if (!entry) {
      const current = await call(() => client.hGet(keys.meta, "run"));
      if (current !== run) return;
      continue;
    }
    if (entry.run !== run) {
      const current = await call(() => client.hGet(keys.meta, "run"));
      if (current === entry.run) {
        // A new run: hand its entry back at once and join it.
        await call(() =>
          client.xClaimJustId(keys.cells, GROUP, name, 0, entry.id, { IDLE: visibilityMs })
        );
        return;
      }
      // Left over from a run the coordinator has since replaced: its cells are not this run's.
      await finish(client, keys, entry, call);
      continue;
    }
    const done = await runEntry(client, keys, joined, entry, context, options, visibilityMs, call);
    if (!done) return await artifacts.releaseAll();
  }
}

async function ensureGroup(client: Redis, stream: string): Promise<void> {
  try {
    await client.xGroupCreate(stream, GROUP, "0", { MKSTREAM: true });
  } catch (e) {
    if (!(e instanceof Error && /BUSYGROUP/.test(e.message))) throw e;
  }
}

/** A dead worker's entry first (pending past the visibility timeout), else a new one. */
async function nextEntry(
  client: Redis,
  keys: QueueKeys,
  name: string,
  visibilityMs: number,
  call: <T>(command: () => Promise<T>) => Promise<T>,
): Promise<CellEntry | null> {
  const claimed = await call(() =>
    client.xAutoClaim(keys.cells, GROUP, name, visibilityMs, "0-0", { COUNT: 1 })
  );
  const stale = claimed.messages.find((m) => m !== null);
  if (stale) return readEntry(stale.id, stale.message);
  // A dropped group (the Redis lost it) is made again, so the worker waits instead of failing.
  const read = await call(async () => {
    try {
      return await client.xReadGroup(GROUP, name, { key: keys.cells, id: ">" }, {
        COUNT: 1,
        BLOCK: 1000,
      }) as unknown as StreamReply;
    } catch (e) {
      if (e instanceof Error && /NOGROUP/.test(e.message)) {
        await ensureGroup(client, keys.cells);
        return null;
      }
      throw e;
    }
  });
  const message = read?.[0]?.messages[0];
  return message ? readEntry(message.id, message.message) : null;
}

/** Acknowledges and deletes an entry: the stream's length stays the work left. */
async function finish(
  client: Redis,
  keys: QueueKeys,
  entry: CellEntry,
  call: <T>(command: () => Promise<T>) => Promise<T>,
): Promise<void> {
  await call(() => client.xAck(keys.cells, GROUP, entry.id));
  await call(() => client.xDel(keys.cells, entry.id));
  await call(() => client.hDel(keys.errors, entry.id));
}

/** Runs one entry; false when the worker was stopped (the entry is handed back). */
async function runEntry(
  client: Redis,
  keys: QueueKeys,
  joined: Joined,
  entry: CellEntry,
  context: CellContext<unknown>,
  options: WorkerOptions,
  visibilityMs: number,
  call: <T>(command: () => Promise<T>) => Promise<T>,
): Promise<boolean> {
  const { experiment, config, run } = joined;
  const { log, name } = options;
  const label = cellLabel(entry.key);
  const resultKey = keys.result(experiment.name, entry.key, entry.cell);
  const pending = await call(() => client.xPendingRange(keys.cells, GROUP, entry.id, entry.id, 1));
  const deliveries = pending[0]?.deliveriesCounter ?? 1;
  if (await call(() => client.exists(resultKey))) {
    // Stored by a worker that died before its ack: it counts once, as it is.
    await finish(client, keys, entry, call);
    return true;
  }
  const deadLetter = async (error: string) => {
    log(`[sia] ${label}: failed ${deliveries} times, to the dead-letter stream: ${error}`);
    await call(() =>
      client.xAdd(keys.dead, "*", {
        run,
        key: JSON.stringify(entry.key),
        error,
        deliveries: String(deliveries),
      })
    );
    await finish(client, keys, entry, call);
  };
  if (deliveries > joined.maxDeliveries) {
    // Its workers died on it: a cell that kills every worker must not cycle forever.
    const error = await call(() => client.hGet(keys.errors, entry.id));
    await deadLetter(error ?? `${deliveries - 1} workers stopped without finishing it`);
    return true;
  }
  const handBack = () =>
    call(() => client.xClaimJustId(keys.cells, GROUP, name, 0, entry.id, { IDLE: visibilityMs }));
  const started = Date.now();
  log(`[sia] ${label}: running (delivery ${deliveries}, waited ${started - entry.at} ms)`);
  const heartbeat = setInterval(async () => {
    try {
      const owner = await client.xPendingRange(keys.cells, GROUP, entry.id, entry.id, 1);
      if (owner[0]?.consumer === name) {
        await client.xClaimJustId(keys.cells, GROUP, name, 0, entry.id);
      }
    } catch {
      // A missed heartbeat is retried at the next tick; the visibility timeout spans several.
    }
  }, joined.heartbeatMs);
  let outcome: { cell: RemoteResult["cell"] } | { error: unknown } | "stopped";
  try {
    outcome = await Promise.race([
      runCell(experiment, config, entry.key, entry.cell, context).then(
        (cell) => ({ cell }),
        (error) => ({ error }),
      ),
      context.stop.then(() => "stopped" as const),
    ]);
  } finally {
    clearInterval(heartbeat);
  }
  if (outcome === "stopped") {
    await handBack();
    log(`[sia] ${label}: handed back (stopped)`);
    return false;
  }
  if ("error" in outcome) {
    const error = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
    if (deliveries >= joined.maxDeliveries) {
      await deadLetter(error);
    } else {
      log(`[sia] ${label}: failed (delivery ${deliveries} of ${joined.maxDeliveries}): ${error}`);
      await call(() => client.hSet(keys.errors, entry.id, error));
      await handBack();
    }
    return true;
  }
  const stored: RemoteResult = { sia: siaVersion(), run, worker: name, cell: outcome.cell };
  await call(() => client.set(resultKey, JSON.stringify(stored), { NX: true }));
  await call(() =>
    client.xAdd(keys.done, "*", {
      run,
      key: JSON.stringify(entry.key),
      result: resultKey,
      worker: name,
      enqueued: String(entry.at),
      started: String(started),
      finished: String(Date.now()),
    })
  );
  await finish(client, keys, entry, call);
  log(`[sia] ${label}: ${experiment.describeResult(outcome.cell.result)} (stored)`);
  return true;
}
