// Result tables: the same rows as Markdown (to read), CSV (to load) and JSON (everything, with
// the note), written together atomically as `<dir>/<base>.md`, `.csv`, `.json`.

import { atomicWriteAll } from "../../core/files.ts";

export type TableCell = string | number;

export function markdownTable(header: readonly string[], rows: readonly TableCell[][]): string {
  return [
    `| ${header.join(" | ")} |`,
    `|${header.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
}

function csvField(v: TableCell): string {
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvTable(header: readonly string[], rows: readonly TableCell[][]): string {
  return [header, ...rows].map((r) => r.map(csvField).join(",")).join("\n") + "\n";
}

/** "81.20" or "n/a" for a missing or undefined number. */
export function fixed(v: number | undefined, digits = 2): string {
  return v === undefined || Number.isNaN(v) ? "n/a" : v.toFixed(digits);
}

export async function writeTables(
  dir: string,
  base: string,
  tables: { md: string; csv: string; json: unknown },
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const text = new TextEncoder();
  // The three are one table: written together or not at all.
  await atomicWriteAll([
    { path: `${dir}/${base}.md`, bytes: text.encode(tables.md) },
    { path: `${dir}/${base}.csv`, bytes: text.encode(tables.csv) },
    {
      path: `${dir}/${base}.json`,
      bytes: text.encode(JSON.stringify(tables.json, null, 2) + "\n"),
    },
  ]);
}
