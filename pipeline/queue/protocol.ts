// What the coordinator and the workers agree on in Redis: the key names, the queue's meta record,
// the config's "queue" section, and the checks that make a worker refuse a queue it would compute
// differently. Everything of one queue lives under `sia:<queue>:`.
//
//   meta      HASH    the run: experiment, raw config (JSON), run hash, sia version, heartbeat,
//                     maxDeliveries, inlineBytes, shared path
//   cells     STREAM  one entry per cell to run {run, key, cell, at}; consumer group "workers".
//                     An entry is acknowledged and deleted once its result is stored, so the
//                     stream's length is the work left.
//   done      STREAM  {run, key, result, worker, started, finished}: a result was stored
//   dead      STREAM  {run, key, error, deliveries}: a cell that failed maxDeliveries times
//   errors    HASH    entry id -> the last error of a failed delivery (for the dead letter)
//   result:<experiment>:<cell file name>:<cell hash>   STRING  {sia, run, worker, cell}
//   artifact:<run>:<id>, making:<run>:<id>, blob:<sha-256>   see artifacts.ts
//
// Every write is safe to repeat (results are SET NX, the coordinator counts a key once), so any
// command can be retried after a lost reply, and the order "result, then done, then ack" means a
// Redis that loses its last writes (append-only fsync each second) never holds an ack without
// its result: the cell is then simply run again.

import { keyError, SiaError } from "../../core/errors.ts";
import { resolveSection } from "../../core/schema.ts";
import type { Resolved } from "../../core/schema.ts";
import { versions } from "../manifest.ts";
import { loadGeneratorModules } from "../user_generator.ts";
import { canonicalJson, cellFileName, configHash } from "../experiments/experiment.ts";
import type { CellKey, Experiment } from "../experiments/experiment.ts";

export const GROUP = "workers";

/** An entry pending this many heartbeats without one is taken to be a dead worker's. */
export const VISIBILITY_HEARTBEATS = 6;

export const QUEUE_SECTION = {
  name: { type: "string", default: "sia", doc: "the queue's name (keys sia:<name>:*)" },
  heartbeat: {
    type: "number",
    above: 0,
    default: 10,
    doc:
      `seconds between a worker's heartbeats; an entry silent ${VISIBILITY_HEARTBEATS} heartbeats is re-claimed`,
  },
  maxDeliveries: {
    type: "int",
    min: 1,
    default: 3,
    doc: "deliveries of a cell before it goes to the dead-letter stream",
  },
  inlineBytes: {
    type: "int",
    min: 0,
    default: 16 * 1024 * 1024,
    doc: "artifacts up to this size are kept in Redis, larger ones under queue.shared",
  },
  shared: {
    type: "string",
    default: "",
    doc: "a directory every worker mounts, for artifacts over queue.inlineBytes",
  },
} as const;

export type QueueOptions = Resolved<typeof QUEUE_SECTION>;

/** The config's "queue" section (every key optional). */
export function resolveQueue(raw: Record<string, unknown>): QueueOptions {
  const queue = resolveSection(QUEUE_SECTION, raw.queue ?? {}, "queue.");
  if (!/^[A-Za-z0-9_.-]+$/.test(queue.name)) {
    throw keyError("queue.name", `expected letters, digits, "_", "." or "-", got "${queue.name}"`);
  }
  return queue;
}

export function siaVersion(): string {
  return versions().sia;
}

/** What a queue's results depend on as a whole: the experiment and its resolved config. */
export function runHash(experiment: Experiment, config: unknown): Promise<string> {
  return configHash({ experiment: experiment.name, config });
}

export function queueKeys(name: string) {
  const prefix = `sia:${name}:`;
  return {
    name,
    meta: `${prefix}meta`,
    cells: `${prefix}cells`,
    done: `${prefix}done`,
    dead: `${prefix}dead`,
    errors: `${prefix}errors`,
    result: (experiment: string, key: CellKey, hash: string) =>
      `${prefix}result:${experiment}:${cellFileName(key)}:${hash}`,
    artifact: (run: string, id: string) => `${prefix}artifact:${run}:${id}`,
    making: (run: string, id: string) => `${prefix}making:${run}:${id}`,
    blob: (sha: string) => `${prefix}blob:${sha}`,
  };
}
export type QueueKeys = ReturnType<typeof queueKeys>;

/** The meta record as stored (every value a string, as Redis hashes keep them). */
export interface Meta {
  readonly experiment: string;
  readonly raw: string;
  readonly run: string;
  readonly sia: string;
  readonly heartbeat: string;
  readonly maxDeliveries: string;
  readonly inlineBytes: string;
  readonly shared: string;
}

export function makeMeta(
  experiment: Experiment,
  raw: Record<string, unknown>,
  run: string,
  queue: QueueOptions,
): Meta {
  return {
    experiment: experiment.name,
    raw: canonicalJson(raw),
    run,
    sia: siaVersion(),
    heartbeat: String(queue.heartbeat),
    maxDeliveries: String(queue.maxDeliveries),
    inlineBytes: String(queue.inlineBytes),
    shared: queue.shared,
  };
}

/** The run a worker will serve, checked against its own code. */
export interface Joined<C = unknown> {
  readonly experiment: Experiment<C>;
  readonly config: C;
  readonly run: string;
  readonly heartbeatMs: number;
  readonly maxDeliveries: number;
  readonly inlineBytes: number;
  readonly shared: string;
}

/**
 * Checks a queue's meta against this process: the same sia version, an experiment it knows, a
 * config it resolves to the same run hash. Anything else is a refusal, one line.
 */
export async function joinMeta(
  queue: string,
  meta: Record<string, string>,
  experiments: Readonly<Record<string, Experiment>>,
): Promise<Joined> {
  const refuse = (problem: string) =>
    new SiaError(`queue ${queue}: ${problem}; this worker refuses it`);
  if (meta.sia !== siaVersion()) {
    throw refuse(`its run is sia ${meta.sia}, this worker is sia ${siaVersion()}`);
  }
  const experiment = experiments[meta.experiment];
  if (!experiment) throw refuse(`unknown experiment "${meta.experiment}"`);
  let config: unknown;
  try {
    const raw = JSON.parse(meta.raw);
    // A user's generator module named by a relative path resolves against this worker's working
    // directory (README, "Many machines"): absolute paths or URLs work from anywhere.
    await loadGeneratorModules(raw, null);
    config = experiment.resolve(raw);
  } catch (e) {
    throw refuse(`its config does not resolve here (${e instanceof Error ? e.message : e})`);
  }
  const run = await runHash(experiment, config);
  if (run !== meta.run) {
    throw refuse(
      `config hash ${meta.run}, but its config resolves to ${run} in this worker's code`,
    );
  }
  return {
    experiment,
    config,
    run,
    heartbeatMs: Number(meta.heartbeat) * 1000,
    maxDeliveries: Number(meta.maxDeliveries),
    inlineBytes: Number(meta.inlineBytes),
    shared: meta.shared,
  };
}

/** A cells-stream entry. */
export interface CellEntry {
  readonly id: string;
  readonly run: string;
  readonly key: CellKey;
  /** configHash(identity(config, key)). */
  readonly cell: string;
  /** Enqueue time, ms since the epoch. */
  readonly at: number;
}

export function readEntry(id: string, message: Record<string, string>): CellEntry {
  return {
    id,
    run: message.run,
    key: JSON.parse(message.key),
    cell: message.cell,
    at: Number(message.at),
  };
}

/** A stored result as kept in Redis. */
export interface RemoteResult<R = unknown> {
  readonly sia: string;
  readonly run: string;
  readonly worker: string;
  readonly cell: {
    readonly experiment: string;
    readonly key: CellKey;
    readonly config: string;
    readonly result: R;
    readonly seconds: number;
  };
}
