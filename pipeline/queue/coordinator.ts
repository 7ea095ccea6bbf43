// `sia pipeline --config FILE --redis URL`: the coordinator. It publishes the run (experiment, raw
// config, run hash, sia version) in the queue's meta record, enqueues the cells whose results are
// stored neither in the local cell store nor in Redis, then follows the done and dead-letter
// streams: each result is checked, saved into the local cell store as a local run saves it, and
// counted once; a progress line says cells done, running, pending and the ETA over all workers.
// When the last result arrives it writes the same tables and charts a local run writes (the
// experiment's report over every cell in grid order). A dead-lettered cell ends the run with its
// key and error; rerunning the command enqueues it again.

import { checkWritableDir } from "../../core/files.ts";
import { SiaError } from "../../core/errors.ts";
import { formatDuration } from "../progress.ts";
import { canonicalJson, cellLabel, configHash } from "../experiments/experiment.ts";
import type { CellKey, Experiment, StoredCell } from "../experiments/experiment.ts";
import { CellStore } from "../experiments/store.ts";
import { GROUP, makeMeta, queueKeys, resolveQueue, runHash, siaVersion } from "./protocol.ts";
import type { QueueKeys, RemoteResult } from "./protocol.ts";
import { connectRedis, redactUrl, retrying } from "./redis.ts";
import type { Redis, StreamReply } from "./redis.ts";

export interface QueuedOptions {
  readonly url: string;
  readonly log: (line: string) => void;
  readonly print: (text: string) => void;
  readonly stop?: Promise<void>;
  /** Seconds between progress lines when nothing arrives (a line is written at every arrival). */
  readonly logEvery?: number;
}

/** When a cell run in this run was enqueued, started and finished (ms since the epoch). */
export interface CellSpan {
  readonly worker: string;
  readonly enqueued: number;
  readonly started: number;
  readonly finished: number;
}

/** What the run measured about the queue itself, for the bench. */
export interface QueueStats {
  readonly cells: StoredCell<unknown>[];
  /** Cells run by workers in this run. */
  readonly ran: number;
  readonly spans: CellSpan[];
  /** Milliseconds from the last result arriving to the tables written. */
  readonly reportMs: number;
  readonly seconds: number;
}

/** The cells of `config` on the queue: enqueue, follow, report; resolves once the tables exist. */
export async function runQueued<C, S, R>(
  experiment: Experiment<C, S, R>,
  config: C,
  raw: Record<string, unknown>,
  options: QueuedOptions,
): Promise<QueueStats> {
  const t0 = performance.now();
  const queue = resolveQueue(raw);
  const keys = queueKeys(queue.name);
  const dir = experiment.outDir(config).replace(/\/+$/, "");
  await checkWritableDir(dir);
  const store = new CellStore(dir);
  const grid = experiment.grid(config);
  const hashes = await Promise.all(grid.map((key) => configHash(experiment.identity(config, key))));
  const run = await runHash(experiment as Experiment, config);
  const client = await connectRedis(options.url, { log: options.log });
  const call = <T>(command: () => Promise<T>) => retrying(client, command);
  try {
    const cells = await Promise.all(
      grid.map((key, i) => store.load<R>(experiment.name, key, hashes[i])),
    );
    // Results workers stored earlier (a coordinator that stopped) count as stored.
    for (const [i, key] of grid.entries()) {
      if (cells[i]) continue;
      const text = await call(() => client.get(keys.result(experiment.name, key, hashes[i])));
      if (text) cells[i] = await keep(store, JSON.parse(text), run, hashes[i]);
    }
    const missing = grid.flatMap((_, i) => (cells[i] ? [] : [i]));
    await claimQueue(client, keys, run, options.url);
    await call(() =>
      client.hSet(keys.meta, { ...makeMeta(experiment as Experiment, raw, run, queue) })
    );
    await call(async () => {
      try {
        await client.xGroupCreate(keys.cells, GROUP, "0", { MKSTREAM: true });
      } catch (e) {
        if (!(e instanceof Error && /BUSYGROUP/.test(e.message))) throw e;
      }
    });
    // A rerun retries the cells that went to the dead-letter stream last time. What is in the
    // cells stream is the work left (a finished entry is deleted), so a cell not there and not
    // stored is enqueued: a coordinator restarted at any point adds no twin and loses none.
    await call(() => client.del(keys.dead));
    const queued = new Set(
      (await call(() => client.xRange(keys.cells, "-", "+"))).map((m) => m.message.key),
    );
    for (const i of missing) {
      const key = JSON.stringify(grid[i]);
      if (queued.has(key)) continue;
      await call(() =>
        client.xAdd(keys.cells, "*", { run, key, cell: hashes[i], at: String(Date.now()) })
      );
    }
    options.log(
      `[sia] queue ${keys.name} on ${redactUrl(options.url)}: run ${run}, ${missing.length} of ` +
        `${grid.length} cells to run (start workers: deno task run worker --redis URL)`,
    );
    // The tables need the experiment's shared inputs: loaded while the workers run.
    const shared = experiment.prepare(config, options.log);
    shared.catch(() => {});
    const follow = await followRun(client, keys, experiment, grid, hashes, cells, missing, {
      ...options,
      store,
      run,
      t0,
    });
    const finished = cells as StoredCell<R>[];
    options.print(await experiment.report(config, finished, await shared, dir));
    const reportMs = follow.lastResultAt === null ? 0 : performance.now() - follow.lastResultAt;
    return {
      cells: finished as StoredCell<unknown>[],
      ran: follow.spans.length,
      spans: follow.spans,
      reportMs,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    await client.close().catch(() => {});
  }
}

/** Checks a result from Redis and saves it into the local store, as a local run would. */
async function keep<R>(
  store: CellStore,
  stored: RemoteResult<R>,
  run: string,
  hash: string,
): Promise<StoredCell<R>> {
  if (stored.sia !== siaVersion() || stored.cell.config !== hash) {
    throw new SiaError(
      `result of ${cellLabel(stored.cell.key)} was made by sia ${stored.sia} under cell hash ` +
        `${stored.cell.config} (this run: sia ${siaVersion()}, ${hash}, run ${run})`,
    );
  }
  const cell: StoredCell<R> = stored.cell;
  await store.save(cell);
  return cell;
}

/**
 * Takes the queue for `run`: the same run resumes; another run replaces it only once its work is
 * finished (the cells stream is empty), else the coordinator refuses, so two configs never mix.
 */
async function claimQueue(client: Redis, keys: QueueKeys, run: string, url: string): Promise<void> {
  const call = <T>(command: () => Promise<T>) => retrying(client, command);
  const meta = await call(() => client.hGetAll(keys.meta));
  if (!meta.run || meta.run === run) return;
  const left = await call(() => client.xLen(keys.cells));
  if (left > 0) {
    throw new SiaError(
      `queue ${keys.name} on ${redactUrl(url)} is running another config (run ${meta.run}, ` +
        `${left} cells left, this config is run ${run}); let it finish or set queue.name`,
    );
  }
  await call(() => client.del([keys.cells, keys.done, keys.dead, keys.errors]));
}

interface Follow {
  readonly spans: CellSpan[];
  readonly lastResultAt: number | null;
}

async function followRun<R>(
  client: Redis,
  keys: QueueKeys,
  experiment: Experiment<unknown, unknown, R>,
  grid: CellKey[],
  hashes: string[],
  cells: (StoredCell<R> | null)[],
  missing: number[],
  options: QueuedOptions & { store: CellStore; run: string; t0: number },
): Promise<Follow> {
  const call = <T>(command: () => Promise<T>) => retrying(client, command);
  const index = new Map(grid.map((key, i) => [canonicalJson(key), i]));
  const dead = new Map<number, string>();
  let cursor = { done: "0", dead: "0" };
  const spans: CellSpan[] = [];
  let lastResultAt: number | null = null;
  let stopped = false;
  options.stop?.then(() => (stopped = true));
  const start = performance.now();
  let lastLine = -Infinity;
  const outstanding = () => missing.filter((i) => !cells[i] && !dead.has(i)).length;
  const status = async () => {
    const pending = await call(() => client.xPending(keys.cells, GROUP));
    const running = Math.min(Number(pending.pending), outstanding());
    const doneNow = missing.length - outstanding() - dead.size;
    const elapsed = (performance.now() - start) / 1000;
    const eta = doneNow > 0 ? (elapsed / doneNow) * outstanding() : Infinity;
    options.log(
      `[sia] queue ${keys.name}: ${grid.length - outstanding() - dead.size}/${grid.length} done, ` +
        `${running} running, ${outstanding() - running} pending` +
        (dead.size ? `, ${dead.size} dead` : "") + `, ETA ${formatDuration(eta)}`,
    );
    lastLine = performance.now();
  };
  while (outstanding() > 0) {
    if (stopped) {
      throw new SiaError(
        `interrupted: ${
          cells.filter(Boolean).length
        } finished cells kept in ${options.store.dir}; ` +
          `the queued cells stay queued for the workers; run the same command to resume`,
        130,
      );
    }
    const reply = await call(() =>
      client.xRead([{ key: keys.done, id: cursor.done }, { key: keys.dead, id: cursor.dead }], {
        BLOCK: 500,
        COUNT: 100,
      })
    ) as unknown as StreamReply;
    let arrived = false;
    for (const stream of reply ?? []) {
      const isDead = stream.name === keys.dead;
      for (const { id, message } of stream.messages) {
        cursor = isDead ? { ...cursor, dead: id } : { ...cursor, done: id };
        if (message.run !== options.run) continue;
        const i = index.get(canonicalJson(JSON.parse(message.key)));
        if (i === undefined || cells[i] || dead.has(i)) continue;
        arrived = true;
        const label = cellLabel(grid[i]);
        if (isDead) {
          dead.set(i, message.error);
          options.log(
            `[sia] ${label}: dead after ${message.deliveries} deliveries: ${message.error}`,
          );
          continue;
        }
        const text = await call(() => client.get(message.result));
        if (!text) continue;
        const cell = await keep<R>(options.store, JSON.parse(text), options.run, hashes[i]);
        cells[i] = cell;
        spans.push({
          worker: message.worker,
          enqueued: Number(message.enqueued),
          started: Number(message.started),
          finished: Number(message.finished),
        });
        lastResultAt = performance.now();
        options.log(
          `[sia] ${label}: ${experiment.describeResult(cell.result)} (${
            cell.seconds.toFixed(0)
          } s, ${message.worker})`,
        );
      }
    }
    if (arrived || performance.now() - lastLine > (options.logEvery ?? 60) * 1000) await status();
    if (dead.size > 0 && outstanding() === 0) break;
  }
  if (dead.size > 0) {
    const list = [...dead].map(([i, error]) => `${cellLabel(grid[i])}: ${error}`).join("; ");
    throw new SiaError(
      `${dead.size} of ${grid.length} cells failed on every delivery (dead-letter stream ` +
        `${keys.dead}): ${list}; rerun the same command to retry them`,
    );
  }
  return { spans, lastResultAt };
}
