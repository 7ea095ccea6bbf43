// The cell store: one JSON file per finished cell under `<out>/cells/`, written atomically the
// moment the cell finishes, so an interrupted run keeps every finished cell and a rerun computes
// only the missing ones. A stored cell carries the hash of what its result depends on; a cell
// stored under another config is an error, never silently reused.

import { atomicWriteText } from "../../core/files.ts";
import { SiaError } from "../../core/errors.ts";
import type { CellKey, StoredCell } from "./experiment.ts";
import { canonicalJson, cellFileName } from "./experiment.ts";

/** A stored cell's text, checked for the fields every cell has (the results view reads them too). */
export function parseCell<R>(path: string, text: string): StoredCell<R> {
  let cell: StoredCell<R>;
  try {
    cell = JSON.parse(text);
  } catch {
    throw new SiaError(`${path}: not a stored cell (invalid JSON); remove it to recompute`);
  }
  if (
    typeof cell !== "object" || cell === null || typeof cell.experiment !== "string" ||
    typeof cell.key !== "object" || cell.key === null || typeof cell.result !== "object"
  ) {
    throw new SiaError(`${path}: not a stored cell (no experiment, key or result); remove it`);
  }
  return cell;
}

export class CellStore {
  readonly dir: string;

  constructor(outDir: string) {
    this.dir = `${outDir.replace(/\/+$/, "")}/cells`;
  }

  path(key: CellKey): string {
    return `${this.dir}/${cellFileName(key)}.json`;
  }

  /** The stored cell, or null; throws if it was computed under another config. */
  async load<R>(experiment: string, key: CellKey, config: string): Promise<StoredCell<R> | null> {
    const path = this.path(key);
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw new SiaError(`${path}: cannot read (${e instanceof Error ? e.message : e})`);
    }
    const cell = parseCell<R>(path, text);
    if (cell.experiment !== experiment || canonicalJson(cell.key) !== canonicalJson(key)) {
      throw new SiaError(`${path}: holds another cell (${canonicalJson(cell.key)})`);
    }
    if (cell.config !== config) {
      throw new SiaError(
        `${path}: computed under another config (hash ${cell.config}, this run ${config}); ` +
          `use another out.dir or remove ${this.dir}`,
      );
    }
    return cell;
  }

  async save<R>(cell: StoredCell<R>): Promise<void> {
    await Deno.mkdir(this.dir, { recursive: true });
    await atomicWriteText(this.path(cell.key), JSON.stringify(cell, null, 2) + "\n");
  }
}
