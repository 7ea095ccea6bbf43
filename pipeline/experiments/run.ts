// The runner every experiment shares: walk the grid, skip the cells already stored, run the rest
// one at a time (each saved the moment it finishes), show progress and the ETA over the cells
// still to run, stop cleanly on Ctrl-C (exit 130, finished cells kept), then write the tables
// and charts from every finished cell.

import { checkWritableDir } from "../../core/files.ts";
import { SiaError } from "../../core/errors.ts";
import { Progress } from "../progress.ts";
import type { CellContext, CellKey, Experiment, RunOptions, StoredCell } from "./experiment.ts";
import { cellLabel, configHash } from "./experiment.ts";
import { CellTracker, writePlan } from "./live.ts";
import { CellStore } from "./store.ts";

/** Values kept for later cells: the most recent `capacity`, so memory stays bounded. */
export function memoCache(capacity: number) {
  const values = new Map<string, Promise<unknown>>();
  return <T>(id: string, make: () => Promise<T>): Promise<T> => {
    let value = values.get(id);
    if (value) values.delete(id);
    else value = make();
    values.set(id, value);
    while (values.size > capacity) values.delete(values.keys().next().value!);
    return value as Promise<T>;
  };
}

/** Runs every missing cell of `experiment` under `config`, then its report; returns every cell. */
export async function runExperiment<C, S, R>(
  experiment: Experiment<C, S, R>,
  config: C,
  options: RunOptions,
): Promise<StoredCell<R>[]> {
  const dir = experiment.outDir(config).replace(/\/+$/, "");
  await checkWritableDir(dir);
  const store = new CellStore(dir);
  const keys = experiment.grid(config);
  const hashes = await Promise.all(keys.map((key) => configHash(experiment.identity(config, key))));
  const done = await Promise.all(
    keys.map((key, i) => store.load<R>(experiment.name, key, hashes[i])),
  );
  const pending = keys.filter((_, i) => !done[i]);
  const shared = await experiment.prepare(config, options.log);
  // After prepare: bad input (the data) fails before the output directory is touched.
  await writePlan(dir, experiment, keys, keys.map((key) => experiment.cost(config, key)));
  const total = pending.reduce((sum, key) => sum + experiment.cost(config, key), 0);
  const progress = options.progress
    ? new Progress({ label: experiment.unit, total, ...options.progress })
    : null;
  let stopped = false;
  const stop = options.stop ?? new Promise<void>(() => {});
  stop.then(() => (stopped = true));
  const cells: StoredCell<R>[] = [];
  const interrupted = () =>
    new SiaError(
      `interrupted: ${cells.length} finished cells kept in ${store.dir}; run the same command to resume`,
      130,
    );
  const context: CellContext<S> = {
    shared,
    tick: (units) => progress?.tick(units),
    stop,
    log: options.log,
    memo: memoCache(4),
  };
  for (const [i, key] of keys.entries()) {
    const before = done[i];
    if (before) {
      options.log(
        `[sia] ${cellLabel(key)}: done before (${experiment.describeResult(before.result)})`,
      );
      cells.push(before);
      continue;
    }
    if (stopped) throw interrupted();
    // The cell's step, metrics and curve, for the results view (live.ts).
    const tracker = new CellTracker(dir, key, experiment.cost(config, key));
    await tracker.start();
    let cell: StoredCell<R>;
    try {
      cell = await runCell(experiment, config, key, hashes[i], {
        ...context,
        tick: (units, metrics) => {
          context.tick(units);
          tracker.tick(units, metrics);
        },
      });
    } catch (e) {
      await tracker.end(stopped ? "stopped" : "failed");
      // A cell stopped by Ctrl-C throws; its partial work is dropped.
      if (stopped) throw interrupted();
      throw e;
    }
    await store.save(cell);
    await tracker.end("done");
    cells.push(cell);
    options.log(
      `[sia] ${cellLabel(key)}: ${experiment.describeResult(cell.result)} (${
        cell.seconds.toFixed(0)
      } s)`,
    );
  }
  progress?.finish(`${pending.length} cells trained`);
  options.print(await experiment.report(config, cells, shared, dir));
  return cells;
}

/**
 * Runs one cell and returns it as stored: the one code path of a local run and a queue worker.
 * `hash` is configHash(identity(config, key)).
 */
export async function runCell<C, S, R>(
  experiment: Experiment<C, S, R>,
  config: C,
  key: CellKey,
  hash: string,
  context: CellContext<S>,
): Promise<StoredCell<R>> {
  const t0 = performance.now();
  try {
    const result = await experiment.run(config, key, context);
    return {
      experiment: experiment.name,
      key,
      config: hash,
      result,
      seconds: (performance.now() - t0) / 1000,
    };
  } catch (e) {
    if (e instanceof SiaError) throw e;
    throw new Error(
      `${experiment.name} cell ${cellLabel(key)}: ${e instanceof Error ? e.message : e}`,
      {
        cause: e,
      },
    );
  }
}
