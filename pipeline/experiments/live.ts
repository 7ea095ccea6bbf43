// What the results view (pipeline/view/) reads while a run goes, beside the stored cells: the
// grid the run walks (`<out>/experiment.json`, written when the run starts, so cells not yet run
// show as pending) and each cell's progress and training curve (`<out>/progress/<cell>.json`).
// Both are written atomically (temp file, then rename), so a reader never sees half a file; a
// cell's file at most twice a second and once when the cell ends, so a fast cell costs little.
// The curve keeps at most CURVE_POINTS points whatever the step count: when full, every other
// point is dropped and the stride doubles (memory and file size stay bounded).

import { atomicWriteText } from "../../core/files.ts";
import type { CellKey } from "./experiment.ts";
import { cellFileName } from "./experiment.ts";

export const CURVE_POINTS = 512;
const WRITE_EVERY_MS = 500;

/** Metrics a cell reports with a step: loss, collapse indicators, learning rate. */
export type StepMetrics = Readonly<Record<string, number | undefined>>;

export type CurvePoint = Readonly<Record<string, number>> & { readonly step: number };

export interface CellProgress {
  readonly key: CellKey;
  readonly state: "running" | "done" | "stopped" | "failed";
  /** Units of the cell's cost done (training steps) out of `total`. */
  readonly step: number;
  readonly total: number;
  /** The latest metrics reported. */
  readonly metrics: Readonly<Record<string, number>>;
  readonly curve: readonly CurvePoint[];
}

export interface Plan {
  readonly experiment: string;
  readonly unit: string;
  readonly cells: readonly { key: CellKey; file: string; cost: number }[];
}

export async function writePlan(
  dir: string,
  experiment: { readonly name: string; readonly unit: string },
  keys: readonly CellKey[],
  costs: readonly number[],
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const plan: Plan = {
    experiment: experiment.name,
    unit: experiment.unit,
    cells: keys.map((key, i) => ({ key, file: cellFileName(key), cost: costs[i] })),
  };
  await atomicWriteText(`${dir}/experiment.json`, JSON.stringify(plan, null, 2) + "\n");
}

/** One running cell's progress file. */
export class CellTracker {
  readonly #path: string;
  readonly #key: CellKey;
  readonly #total: number;
  #step = 0;
  #stride = 1;
  #metrics: Record<string, number> = {};
  #curve: CurvePoint[] = [];
  #lastWrite = -Infinity;
  /** Writes run one after another (they share the temporary name). */
  #writing: Promise<void> = Promise.resolve();
  #pending = false;
  /** A failed write, thrown by end() (a progress file must not fail a cell mid-step). */
  #error: unknown = null;

  constructor(dir: string, key: CellKey, total: number) {
    this.#path = `${dir}/progress/${cellFileName(key)}.json`;
    this.#key = key;
    this.#total = total;
  }

  async start(): Promise<void> {
    await Deno.mkdir(this.#path.slice(0, this.#path.lastIndexOf("/")), { recursive: true });
    this.#write("running");
    await this.#writing;
  }

  tick(units: number, metrics?: StepMetrics): void {
    this.#step += units;
    if (metrics) {
      const finite = Object.entries(metrics).filter((e): e is [string, number] =>
        typeof e[1] === "number" && Number.isFinite(e[1])
      );
      this.#metrics = Object.fromEntries(finite);
      if (this.#step % this.#stride === 0) {
        this.#curve.push({ ...this.#metrics, step: this.#step });
        if (this.#curve.length > CURVE_POINTS) {
          this.#curve = this.#curve.filter((p) => p.step % (2 * this.#stride) === 0);
          this.#stride *= 2;
        }
      }
    }
    if (performance.now() - this.#lastWrite >= WRITE_EVERY_MS && !this.#pending) {
      this.#write("running");
    }
  }

  /** The last write, with the cell's end state; resolves when it is on disk. */
  async end(state: "done" | "stopped" | "failed"): Promise<void> {
    this.#write(state);
    await this.#writing;
    if (this.#error) throw this.#error;
  }

  #write(state: CellProgress["state"]): void {
    this.#lastWrite = performance.now();
    this.#pending = true;
    this.#writing = this.#writing.then(() => {
      this.#pending = false;
      const progress: CellProgress = {
        key: this.#key,
        state,
        step: this.#step,
        total: this.#total,
        metrics: this.#metrics,
        curve: this.#curve,
      };
      return atomicWriteText(this.#path, JSON.stringify(progress) + "\n");
    }).catch((e) => {
      this.#error ??= e;
    });
  }
}
