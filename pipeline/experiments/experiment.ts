// The contract of an experiment: a grid of cells, each a pure function of its key and the config.
// A cell's key names it (learner, arm, size, seed, ...); every random draw inside the cell derives
// from that key, so a cell gives the same result in any process, in any order, on any machine of
// the same CPU kind. The runner (run.ts) owns everything else: the cell store, resume, progress,
// Ctrl-C; an experiment only says what its cells are, how one runs, and how the finished cells
// become tables and charts.

import type { Field } from "../../core/schema.ts";
import type { ProgressOptions } from "../progress.ts";
import type { StepMetrics } from "./live.ts";

export type KeyValue = string | number;
/** A cell's coordinates, in the order they name it: { learner: "simclr", arm: "noised", seed: 0 }. */
export type CellKey = Readonly<Record<string, KeyValue>>;

/** What a cell sees besides its key and the config. */
export interface CellContext<S> {
  /** Read-only inputs built once per process from the config alone (the loaded data). */
  readonly shared: S;
  /** Progress: `units` of the cell's cost done, with the step's metrics for the view's curves. */
  tick(units: number, metrics?: StepMetrics): void;
  /** Resolves on Ctrl-C; a cell may then stop early by throwing (nothing of it is stored). */
  readonly stop: Promise<void>;
  readonly log: (line: string) => void;
  /**
   * A pure value several cells share (Table 3's pool of a seed is used by every learner), made
   * once per process and kept while later cells may ask for it. `id` must name everything the
   * value depends on; using it never changes a cell's result, only how often it is computed.
   * With a codec the value is an artifact: on a queue (pipeline/queue/) one worker makes it and
   * stores its bytes by content hash, and every other worker reads it instead of making it again.
   */
  memo<T>(id: string, make: () => Promise<T>, codec?: Codec<T>): Promise<T>;
}

/** A shared value as bytes and back, exactly: decode(encode(v)) gives the same cell results. */
export interface Codec<T> {
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

/** One finished cell as stored in `<out>/cells/<file>.json`. */
export interface StoredCell<R> {
  readonly experiment: string;
  readonly key: CellKey;
  /** sha-256 (hex, 16 digits) of identity(config, key): what the result depends on. */
  readonly config: string;
  readonly result: R;
  /** Wall time of the cell; kept beside the result so results compare byte for byte. */
  readonly seconds: number;
}

export interface Experiment<C = unknown, S = unknown, R = unknown> {
  /** The config's "experiment" value. */
  readonly name: string;
  readonly summary: string;
  /** Help lines for the experiment's own config keys. */
  describe(): string[];
  /** Validates a raw config (SiaError naming the key on bad input) and fills defaults. */
  resolve(raw: Record<string, unknown>): C;
  /** Every key --set may set on `raw`, by dotted path: the field decides how a value parses. */
  fields(raw: Record<string, unknown>): Record<string, Field>;
  outDir(config: C): string;
  /** The cells, in the order they run. */
  grid(config: C): CellKey[];
  /** Everything in the config a cell's result depends on (hashed into the stored cell). */
  identity(config: C, key: CellKey): unknown;
  /** Progress units of a cell (training steps, say); the ETA runs over the cells still to run. */
  cost(config: C, key: CellKey): number;
  /** The progress line's label, e.g. "[table3] steps". */
  readonly unit: string;
  prepare(config: C, log: (line: string) => void): Promise<S>;
  run(config: C, key: CellKey, context: CellContext<S>): Promise<R>;
  /**
   * The result fields the results view tabulates as cells finish, with a label and a scale (100:
   * a share shown in %); absent: every numeric field as it is.
   */
  readonly metrics?: Readonly<Record<string, { readonly label: string; readonly scale: number }>>;
  /** A short line about a result for the log ("linear 80.10 %"). */
  describeResult(result: R): string;
  /** Writes the tables and charts into `dir` from every finished cell; returns the text to print. */
  report(config: C, cells: readonly StoredCell<R>[], shared: S, dir: string): Promise<string>;
}

/** Typed helper so each definition is checked against its own config and result types. */
export function defineExperiment<C, S, R>(experiment: Experiment<C, S, R>): Experiment {
  return experiment as unknown as Experiment;
}

export interface RunOptions {
  readonly log: (line: string) => void;
  readonly print: (text: string) => void;
  /** Progress over the cells still to run; none when absent. */
  readonly progress?: Pick<ProgressOptions, "tty" | "write" | "logEvery">;
  /** Resolves to stop as Ctrl-C does: the cell running is dropped, finished cells stay. */
  readonly stop?: Promise<void>;
}

/** "simclr / baseline / seed 0": string values as they are, numbers after their name. */
export function cellLabel(key: CellKey): string {
  return Object.entries(key).map(([k, v]) => typeof v === "number" ? `${k} ${v}` : v).join(" / ");
}

/** "simclr__baseline__seed0": the cell's file name (without .json), safe on every file system. */
export function cellFileName(key: CellKey): string {
  return Object.entries(key).map(([k, v]) =>
    typeof v === "number" ? `${k}${v}` : v.replace(/[^a-z0-9-]/gi, "_")
  ).join("__");
}

/** The cartesian product of named axes, the first axis outermost. */
export function product(axes: Record<string, readonly KeyValue[]>): CellKey[] {
  let keys: Record<string, KeyValue>[] = [{}];
  for (const [name, values] of Object.entries(axes)) {
    keys = keys.flatMap((k) => values.map((v) => ({ ...k, [name]: v })));
  }
  return keys;
}

/** JSON with object keys sorted, so equal values hash equally whatever their key order. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_, v) =>
      v && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : v,
  );
}

export async function configHash(value: unknown): Promise<string> {
  const bytes = new TextEncoder().encode(canonicalJson(value));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}
