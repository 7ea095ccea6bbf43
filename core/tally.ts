// Running counts of what went through the graph: total, per class, per origin (provenance and
// generator). Kept for every run, so the manifest has counts whether or not a summary is asked for.

import { PROVENANCE_NAMES } from "./batch.ts";
import type { Batch } from "./batch.ts";

export class Tally {
  total = 0;
  readonly perClass = new Map<number, number>();
  readonly perOrigin = new Map<string, number>();

  add(batch: Batch): void {
    const n = batch.shape[0];
    this.total += n;
    for (let j = 0; j < n; j++) {
      this.perClass.set(batch.labels[j], (this.perClass.get(batch.labels[j]) ?? 0) + 1);
      const generator = batch.generator[j];
      const origin = PROVENANCE_NAMES[batch.provenance[j]] + (generator ? ` (${generator})` : "");
      this.perOrigin.set(origin, (this.perOrigin.get(origin) ?? 0) + 1);
    }
  }

  /** Classes ascending, -1 (unlabeled) first. */
  classes(): [number, number][] {
    return [...this.perClass.entries()].sort((a, b) => a[0] - b[0]);
  }

  toJSON(): Record<string, unknown> {
    return {
      total: this.total,
      perClass: Object.fromEntries(this.classes()),
      perOrigin: Object.fromEntries(this.perOrigin),
    };
  }
}
