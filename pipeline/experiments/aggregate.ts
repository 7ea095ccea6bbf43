// From finished cells to numbers: a metric grouped over every key field but the pairing one (the
// seed), with mean, sd and 95 % t-interval; and paired differences between two groups, matched on
// the seed, so a comparison's interval carries only the variation the two arms do not share.

import type { Paired, Summary } from "../../core/stats.ts";
import { paired, summarize } from "../../core/stats.ts";
import type { CellKey, KeyValue, StoredCell } from "./experiment.ts";
import { canonicalJson } from "./experiment.ts";

export interface Group extends Summary {
  /** The cells' key without the pairing field. */
  readonly key: CellKey;
  /** Pairing values (seeds), ascending, and the metric of each. */
  readonly pairs: readonly KeyValue[];
  readonly values: readonly number[];
}

export interface Difference extends Paired {
  readonly a: CellKey;
  readonly b: CellKey;
  /** The seeds both groups have, the pairs of the difference. */
  readonly pairs: readonly KeyValue[];
}

function without(key: CellKey, field: string): CellKey {
  return Object.fromEntries(Object.entries(key).filter(([k]) => k !== field));
}

/** One group per distinct key without `pairBy`, in the order cells first show it. */
export function groupCells<R>(
  cells: readonly StoredCell<R>[],
  metric: (result: R, key: CellKey) => number,
  pairBy = "seed",
): Group[] {
  const byKey = new Map<string, { key: CellKey; entries: [KeyValue, number][] }>();
  for (const cell of cells) {
    const key = without(cell.key, pairBy);
    const id = canonicalJson(key);
    const group = byKey.get(id) ?? { key, entries: [] };
    byKey.set(id, group);
    group.entries.push([cell.key[pairBy], metric(cell.result, cell.key)]);
  }
  return [...byKey.values()].map(({ key, entries }) => {
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const values = entries.map(([, v]) => v);
    return { key, pairs: entries.map(([p]) => p), values, ...summarize(values) };
  });
}

/** The group whose key has every field of `match`; undefined when none. */
export function findGroup(groups: readonly Group[], match: CellKey): Group | undefined {
  return groups.find((g) => Object.entries(match).every(([k, v]) => g.key[k] === v));
}

/** a - b paired on the seeds both have. */
export function difference(a: Group, b: Group): Difference {
  const pairs = a.pairs.filter((p) => b.pairs.includes(p));
  const pick = (g: Group) => pairs.map((p) => g.values[g.pairs.indexOf(p)]);
  return { a: a.key, b: b.key, pairs, ...paired(pick(a), pick(b)) };
}

/** "+1.20 [-0.30, 2.70] (3+ 0-)": a difference's mean, interval and sign counts, in points. */
export function formatDifference(d: Paired, digits = 2): string {
  const f = (v: number) => (v > 0 ? "+" : "") + v.toFixed(digits);
  const interval = Number.isNaN(d.lo) ? "n/a" : `${f(d.lo)}, ${f(d.hi)}`;
  return `${f(d.mean)} [${interval}] (${d.above}+ ${d.below}-${d.ties ? ` ${d.ties}=` : ""})`;
}
