// A results directory read as the view shows it: the grid the run walks (experiment.json), each
// cell's state (pending; running with its step and metrics from progress/<cell>.json; done with
// its stored result), the table of every finished cell (mean, sd and 95 % interval over seeds, and
// each arm paired with its row's first arm on the seeds both have), the sample sets (shard
// directories with a manifest) and the memorization summary. Read afresh on every poll: what a
// run writes is atomic (temp file, then rename), so a read sees whole files or none. Bad input (no
// directory, a corrupt file) is a line in `errors`, never an exception: the server keeps going.

import { SiaError } from "../../core/errors.ts";
import { difference, groupCells } from "../experiments/aggregate.ts";
import type { CellKey, StoredCell } from "../experiments/experiment.ts";
import { canonicalJson, cellLabel } from "../experiments/experiment.ts";
import type { CellProgress, Plan } from "../experiments/live.ts";
import { EXPERIMENTS } from "../experiments/registry.ts";
import { parseCell } from "../experiments/store.ts";
import { csvTable } from "../experiments/tables.ts";

export type CellState = "pending" | "running" | "done" | "stopped" | "failed" | "corrupt";

export interface CellView {
  readonly key: CellKey;
  readonly file: string;
  readonly label: string;
  readonly state: CellState;
  readonly step: number;
  readonly total: number;
  readonly metrics: Readonly<Record<string, number>>;
  readonly result: unknown;
  readonly seconds: number | null;
  /** Whether progress/<file>.json holds a curve. */
  readonly curve: boolean;
}

export interface Metric {
  readonly name: string;
  readonly label: string;
  readonly scale: number;
}

export interface TableRow {
  readonly key: CellKey;
  readonly label: string;
  readonly metric: string;
  readonly n: number;
  readonly mean: number;
  readonly sd: number;
  readonly lo: number | null;
  readonly hi: number | null;
  readonly values: readonly number[];
}

export interface DifferenceRow {
  readonly label: string;
  readonly reference: string;
  readonly metric: string;
  readonly n: number;
  readonly mean: number;
  readonly lo: number | null;
  readonly hi: number | null;
  readonly above: number;
  readonly below: number;
  readonly ties: number;
}

export interface SampleSetInfo {
  /** Path below the results directory ("." for the directory itself). */
  readonly name: string;
  readonly generator: string;
  readonly images: number;
  /** The manifest's mtime: a new run of the set changes it. */
  readonly version: number;
  /** The run's summary.md (its memorization figures over out.nnSample images), when written. */
  readonly summary: string | null;
}

export interface ResultsView {
  readonly dir: string;
  readonly errors: readonly string[];
  readonly experiment: string | null;
  readonly unit: string;
  readonly cells: readonly CellView[];
  readonly metrics: readonly Metric[];
  readonly table: readonly TableRow[];
  readonly differences: readonly DifferenceRow[];
  readonly samples: readonly SampleSetInfo[];
  /** Rows of memorization.json (the memorization experiment), when present. */
  readonly memorization: unknown[] | null;
  /** Tables the run's report wrote (table3.csv, ...): served for download as they are. */
  readonly files: readonly string[];
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * Files parsed once per version: a poll stats every file but reads and parses only those whose
 * (inode, mtime, size) changed; a run's writes are renames, so each is a new inode. Entries of
 * files not asked for in the last read are dropped, so the cache holds one directory's files.
 */
export class ParsedFiles {
  #entries = new Map<string, { stamp: string; value: unknown; error: string | null }>();
  #asked = new Set<string>();

  /** The parsed file, null when it does not exist; a parse error is thrown as a SiaError. */
  async get<T>(path: string, parse: (text: string) => T): Promise<T | null> {
    this.#asked.add(path);
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw new SiaError(`${path}: cannot read (${message(e)})`);
    }
    const stamp = `${info.ino}:${info.mtime?.getTime()}:${info.size}`;
    let entry = this.#entries.get(path);
    if (!entry || entry.stamp !== stamp) {
      entry = { stamp, value: null, error: null };
      try {
        entry.value = parse(await Deno.readTextFile(path));
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return null;
        entry.error = e instanceof SiaError ? e.message : `${path}: ${message(e)}`;
      }
      this.#entries.set(path, entry);
    }
    if (entry.error) throw new SiaError(entry.error);
    return entry.value as T;
  }

  /** Forgets the files not asked for since the last sweep. */
  sweep(): void {
    for (const path of this.#entries.keys()) if (!this.#asked.has(path)) this.#entries.delete(path);
    this.#asked.clear();
  }
}

function jsonParser(path: string, what: string) {
  return (text: string): unknown => {
    try {
      return JSON.parse(text);
    } catch {
      throw new SiaError(`${path}: not ${what} (invalid JSON)`);
    }
  };
}

async function readJson(
  files: ParsedFiles,
  path: string,
  what: string,
  errors: string[],
): Promise<unknown> {
  try {
    return await files.get(path, jsonParser(path, what));
  } catch (e) {
    errors.push(message(e));
    return null;
  }
}

async function names(dir: string): Promise<Deno.DirEntry[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(dir))).sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0
    );
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

/** Shard directories (images-00000.npy beside a manifest.json): the dir and two levels below. */
async function sampleSets(
  dir: string,
  files: ParsedFiles,
  errors: string[],
): Promise<SampleSetInfo[]> {
  const sets: SampleSetInfo[] = [];
  const visit = async (path: string, name: string, depth: number) => {
    const entries = await names(path);
    if (entries.some((e) => e.name === "images-00000.npy")) {
      const manifest = await readJson(files, `${path}/manifest.json`, "a manifest", errors) as {
        generator?: { name?: string };
        counts?: { total?: number };
      } | null;
      if (manifest) {
        const { mtime } = await Deno.stat(`${path}/manifest.json`);
        sets.push({
          name,
          generator: String(manifest.generator?.name ?? "?"),
          images: Number(manifest.counts?.total ?? 0),
          version: mtime?.getTime() ?? 0,
          summary: await files.get(`${path}/summary.md`, (text) => text).catch(() => null),
        });
      }
    }
    if (depth === 2) return;
    for (const e of entries) {
      if (e.isDirectory && !["cells", "progress", "models"].includes(e.name)) {
        await visit(`${path}/${e.name}`, name === "." ? e.name : `${name}/${e.name}`, depth + 1);
      }
    }
  };
  await visit(dir, ".", 0);
  return sets;
}

function metricsOf(experiment: string | null, cells: readonly CellView[]): Metric[] {
  const declared = experiment ? EXPERIMENTS[experiment]?.metrics : undefined;
  if (declared) {
    return Object.entries(declared).map(([name, m]) => ({ name, label: m.label, scale: m.scale }));
  }
  const fields = new Set<string>();
  for (const c of cells) {
    if (c.state !== "done" || typeof c.result !== "object" || c.result === null) continue;
    for (const [k, v] of Object.entries(c.result)) if (typeof v === "number") fields.add(k);
  }
  return [...fields].map((name) => ({ name, label: name, scale: 1 }));
}

const finite = (v: number) => (Number.isFinite(v) ? v : null);

function tabulate(cells: readonly CellView[], metrics: readonly Metric[]) {
  const done = cells.filter((c) => c.state === "done").map((c) =>
    ({ key: c.key, result: c.result }) as StoredCell<Record<string, number>>
  );
  const table: TableRow[] = [];
  const differences: DifferenceRow[] = [];
  for (const m of metrics) {
    const groups = groupCells(done, (r) => m.scale * Number(r[m.name]));
    for (const g of groups) {
      table.push({
        key: g.key,
        label: cellLabel(g.key),
        metric: m.name,
        n: g.n,
        mean: g.mean,
        sd: g.sd,
        lo: finite(g.lo),
        hi: finite(g.hi),
        values: g.values,
      });
      // The reference: the first group with the same key but for its last field (the arm).
      const fields = Object.keys(g.key);
      const row = canonicalJson(Object.fromEntries(fields.slice(0, -1).map((f) => [f, g.key[f]])));
      const reference = groups.find((r) =>
        canonicalJson(Object.fromEntries(fields.slice(0, -1).map((f) => [f, r.key[f]]))) === row &&
        Object.keys(r.key).length === fields.length
      );
      if (!reference || reference === g || fields.length < 2) continue;
      const d = difference(g, reference);
      if (d.n === 0) continue;
      differences.push({
        label: cellLabel(g.key),
        reference: cellLabel(reference.key),
        metric: m.name,
        n: d.n,
        mean: d.mean,
        lo: finite(d.lo),
        hi: finite(d.hi),
        above: d.above,
        below: d.below,
        ties: d.ties,
      });
    }
  }
  return { table, differences };
}

/** Reads `dir` as the view shows it; every problem is a line in `errors`. */
export async function readResults(
  dir: string,
  files = new ParsedFiles(),
): Promise<ResultsView> {
  const view = await read(dir, files);
  files.sweep();
  return view;
}

async function read(dir: string, cache: ParsedFiles): Promise<ResultsView> {
  const errors: string[] = [];
  const empty: ResultsView = {
    dir,
    errors,
    experiment: null,
    unit: "",
    cells: [],
    metrics: [],
    table: [],
    differences: [],
    samples: [],
    memorization: null,
    files: [],
  };
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(dir);
  } catch (e) {
    errors.push(
      e instanceof Deno.errors.NotFound
        ? `${dir}: no such results directory (the page fills in when a run creates it)`
        : `${dir}: cannot read (${message(e)})`,
    );
    return empty;
  }
  if (!info.isDirectory) {
    errors.push(`${dir}: not a directory (pass a results directory: a run's out.dir)`);
    return empty;
  }
  const plan = await readJson(cache, `${dir}/experiment.json`, "an experiment plan", errors) as
    | Plan
    | null;
  const stored = new Map<string, StoredCell<unknown> | "corrupt">();
  for (const e of await names(`${dir}/cells`)) {
    if (!e.isFile || !e.name.endsWith(".json")) continue;
    const path = `${dir}/cells/${e.name}`;
    try {
      const cell = await cache.get(path, (text) => parseCell(path, text));
      if (cell) stored.set(e.name.slice(0, -5), cell);
    } catch (err) {
      errors.push(err instanceof SiaError ? err.message : `${path}: ${message(err)}`);
      stored.set(e.name.slice(0, -5), "corrupt");
    }
  }
  const progress = new Map<string, CellProgress>();
  for (const e of await names(`${dir}/progress`)) {
    if (!e.isFile || !e.name.endsWith(".json")) continue;
    const p = await readJson(cache, `${dir}/progress/${e.name}`, "a progress file", errors);
    if (p) progress.set(e.name.slice(0, -5), p as CellProgress);
  }
  // The plan's cells in its order, then any stored cell it does not list (an older run's).
  const files = plan?.cells.map((c) => c.file) ?? [];
  for (const f of stored.keys()) if (!files.includes(f)) files.push(f);
  const experiment = plan?.experiment ??
    [...stored.values()].find((c): c is StoredCell<unknown> => c !== "corrupt")?.experiment ??
    null;
  const cells: CellView[] = files.map((file) => {
    const s = stored.get(file);
    const p = progress.get(file);
    const planned = plan?.cells.find((c) => c.file === file);
    const key = (s && s !== "corrupt" ? s.key : planned?.key ?? p?.key) ?? { cell: file };
    const cell = s && s !== "corrupt" ? s : null;
    const state: CellState = s === "corrupt"
      ? "corrupt"
      : cell
      ? "done"
      : p && p.state !== "done"
      ? p.state
      : "pending";
    return {
      key,
      file,
      label: cellLabel(key),
      state,
      step: p?.step ?? (cell ? planned?.cost ?? 0 : 0),
      total: p?.total ?? planned?.cost ?? 0,
      metrics: p?.metrics ?? {},
      result: cell?.result ?? null,
      seconds: cell?.seconds ?? null,
      curve: (p?.curve.length ?? 0) > 0,
    };
  });
  const metrics = metricsOf(experiment, cells);
  const { table, differences } = tabulate(cells, metrics);
  const memorization = await readJson(cache, `${dir}/memorization.json`, "a table", errors) as
    | { rows?: unknown[] }
    | null;
  const reports = (await names(dir)).filter((e) => e.isFile && /\.(csv|md|json)$/.test(e.name))
    .map((e) => e.name).filter((n) => n !== "experiment.json" && n !== "manifest.json");
  return {
    dir,
    errors,
    experiment,
    unit: plan?.unit ?? "",
    cells,
    metrics,
    table,
    differences,
    samples: await sampleSets(dir, cache, errors),
    memorization: Array.isArray(memorization?.rows) ? memorization.rows : null,
    files: reports,
  };
}

/** The live table as CSV: one row per group and metric. */
export function tableCsv(view: ResultsView): string {
  const fields = [...new Set(view.table.flatMap((r) => Object.keys(r.key)))];
  const num = (v: number | null) => (v === null ? "" : v);
  return csvTable(
    [...fields, "metric", "n", "mean", "sd", "lo95", "hi95", "values"],
    view.table.map((r) => [
      ...fields.map((f) => r.key[f] ?? ""),
      r.metric,
      r.n,
      r.mean,
      r.sd,
      num(r.lo),
      num(r.hi),
      r.values.join(" "),
    ]),
  );
}

/** A cell's training curve, or null when it has none. */
export async function readCurve(dir: string, file: string): Promise<CellProgress | null> {
  if (!/^[A-Za-z0-9_.-]+$/.test(file)) return null;
  const path = `${dir}/progress/${file}.json`;
  return await new ParsedFiles().get(path, jsonParser(path, "a progress file")) as
    | CellProgress
    | null;
}
