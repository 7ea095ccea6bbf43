// Table 3's cells (one learner, one arm, one seed: probe accuracies), saved one file per cell as
// soon as it finishes, so a long run is useful before it ends and resumes without redoing
// finished cells; and the tables (Markdown, CSV, JSON) and bar chart made from them.

import { encodePng } from "../../core/plot/png.ts";
import { rasterize } from "../../core/plot/raster.ts";
import { toSvg } from "../../core/plot/svg.ts";
import type { Mark } from "../../core/plot/marks.ts";
import { atomicWrite, atomicWriteText } from "../../core/files.ts";

export interface Cell {
  readonly learner: string;
  /** "baseline", "generated:<generator>", or "noised". */
  readonly arm: string;
  readonly seed: number;
  readonly linear: number;
  readonly knn: number;
  readonly testImages: number;
  readonly steps: number;
  readonly finalLoss: number;
  readonly seconds: number;
}

/** The main paper's Table 3 (CIFAR-10, linear accuracy %), for reference beside ours. */
export const PAPER: Record<string, Record<string, number>> = {
  swav: { baseline: 88.94, generated: 90.11, noised: 90.09 },
  simsiam: { baseline: 88.82, generated: 90.8, noised: 90.68 },
  simclr: { baseline: 90.14, generated: 91.71, noised: 91.41 },
  moco: { baseline: 91.72, generated: 92.95, noised: 92.84 },
};

export function cellFile(dir: string, learner: string, arm: string, seed: number): string {
  return `${dir}/cells/${learner}__${arm.replace(/[^a-z0-9-]/gi, "_")}__seed${seed}.json`;
}

export async function saveCell(dir: string, cell: Cell): Promise<void> {
  await Deno.mkdir(`${dir}/cells`, { recursive: true });
  await atomicWriteText(
    cellFile(dir, cell.learner, cell.arm, cell.seed),
    JSON.stringify(cell, null, 2) + "\n",
  );
}

export async function loadCell(
  dir: string,
  learner: string,
  arm: string,
  seed: number,
): Promise<Cell | null> {
  try {
    return JSON.parse(await Deno.readTextFile(cellFile(dir, learner, arm, seed)));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

export interface Row {
  readonly learner: string;
  readonly arm: string;
  readonly metric: "linear" | "knn";
  readonly mean: number;
  readonly std: number;
  readonly values: number[];
}

/** Mean and sample standard deviation per (learner, arm, metric), in the given orders. */
export function aggregate(
  cells: readonly Cell[],
  learners: readonly string[],
  arms: readonly string[],
): Row[] {
  const rows: Row[] = [];
  for (const metric of ["linear", "knn"] as const) {
    for (const learner of learners) {
      for (const arm of arms) {
        const values = cells.filter((c) => c.learner === learner && c.arm === arm).map((c) =>
          100 * c[metric]
        );
        if (!values.length) continue;
        const mean = values.reduce((a, b) => a + b, 0) / values.length;
        const std = values.length > 1
          ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1))
          : 0;
        rows.push({ learner, arm, metric, mean, std, values });
      }
    }
  }
  return rows;
}

function paperValue(learner: string, arm: string): number | undefined {
  return PAPER[learner]?.[arm.split(":")[0]];
}

/** table3.md, table3.csv and table3.json in `dir`. */
export async function writeTables(dir: string, rows: readonly Row[], note: string): Promise<void> {
  const fmt = (r: Row) => `${r.mean.toFixed(2)} ± ${r.std.toFixed(2)} (n=${r.values.length})`;
  const md = [
    "# Table 3: contrastive learning with generated vs noised data",
    "",
    note,
    "",
    "| learner | arm | linear probe % | kNN % | every seed (linear) | paper (CIFAR-10, linear) |",
    "|---|---|---|---|---|---|",
    ...rows.filter((r) => r.metric === "linear").map((r) => {
      const knn = rows.find((k) =>
        k.metric === "knn" && k.learner === r.learner && k.arm === r.arm
      )!;
      const paper = paperValue(r.learner, r.arm);
      return `| ${r.learner} | ${r.arm} | ${fmt(r)} | ${fmt(knn)} | ${
        r.values.map((v) => v.toFixed(2)).join(", ")
      } | ${paper ?? "n/a"} |`;
    }),
    "",
  ].join("\n");
  const csv = [
    "learner,arm,metric,mean,std,n,values,paper",
    ...rows.map((r) =>
      `${r.learner},${r.arm},${r.metric},${r.mean},${r.std},${r.values.length},${
        r.values.join(" ")
      },${r.metric === "linear" ? paperValue(r.learner, r.arm) ?? "" : ""}`
    ),
    "",
  ].join("\n");
  await Deno.mkdir(dir, { recursive: true });
  await atomicWriteText(`${dir}/table3.md`, md);
  await atomicWriteText(`${dir}/table3.csv`, csv);
  await atomicWriteText(
    `${dir}/table3.json`,
    JSON.stringify({ note, rows, paper: PAPER }, null, 2) + "\n",
  );
}

const COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"];

/** table3.svg and table3.png: linear-probe accuracy per learner, one bar per arm, error bars 1 sd. */
export async function writeChart(dir: string, rows: readonly Row[]): Promise<void> {
  const linear = rows.filter((r) => r.metric === "linear");
  const learners = [...new Set(linear.map((r) => r.learner))];
  const arms = [...new Set(linear.map((r) => r.arm))];
  // Legend entries: swatch, label (about 6 units a character at size 10), gap.
  const legend = arms.map((arm) => 20 + 6 * arm.length + 20);
  const width = Math.max(
    120 + learners.length * (arms.length * 36 + 30),
    100 + legend.reduce((a, b) => a + b, 0),
  );
  const height = 300;
  const top = 40;
  const bottom = 240;
  const lo = Math.max(0, Math.floor(Math.min(...linear.map((r) => r.mean - r.std)) / 5) * 5 - 5);
  const hi = Math.min(100, Math.ceil(Math.max(...linear.map((r) => r.mean + r.std)) / 5) * 5 + 5);
  const y = (v: number) => bottom - ((v - lo) / (hi - lo)) * (bottom - top);
  const marks: Mark[] = [
    { kind: "rect", x: 0, y: 0, w: width, h: height, fill: "#ffffff" },
    {
      kind: "text",
      x: width / 2,
      y: 22,
      text: "Linear probe accuracy (%), mean and 1 sd over seeds",
      size: 12,
      color: "#222222",
      anchor: "middle",
      bold: true,
    },
    { kind: "line", x0: 70, y0: top, x1: 70, y1: bottom, width: 1, color: "#222222" },
    { kind: "line", x0: 70, y0: bottom, x1: width - 20, y1: bottom, width: 1, color: "#222222" },
  ];
  for (let v = lo; v <= hi; v += 5) {
    marks.push({ kind: "line", x0: 66, y0: y(v), x1: 70, y1: y(v), width: 1, color: "#222222" });
    marks.push({
      kind: "text",
      x: 62,
      y: y(v) + 4,
      text: String(v),
      size: 10,
      color: "#222222",
      anchor: "end",
    });
  }
  learners.forEach((learner, li) => {
    const x0 = 90 + li * (arms.length * 36 + 30);
    arms.forEach((arm, ai) => {
      const r = linear.find((r) => r.learner === learner && r.arm === arm);
      if (!r) return;
      const x = x0 + ai * 36;
      marks.push({
        kind: "rect",
        x,
        y: y(r.mean),
        w: 28,
        h: bottom - y(r.mean),
        fill: COLORS[ai % COLORS.length],
      });
      marks.push({
        kind: "line",
        x0: x + 14,
        y0: y(r.mean + r.std),
        x1: x + 14,
        y1: y(r.mean - r.std),
        width: 1.5,
        color: "#222222",
      });
      for (const v of [r.mean + r.std, r.mean - r.std]) {
        marks.push({
          kind: "line",
          x0: x + 8,
          y0: y(v),
          x1: x + 20,
          y1: y(v),
          width: 1.5,
          color: "#222222",
        });
      }
    });
    marks.push({
      kind: "text",
      x: x0 + (arms.length * 36) / 2 - 4,
      y: bottom + 16,
      text: learner,
      size: 11,
      color: "#222222",
      anchor: "middle",
    });
  });
  arms.forEach((arm, ai) => {
    const x = 80 + legend.slice(0, ai).reduce((a, b) => a + b, 0);
    marks.push({ kind: "rect", x, y: height - 30, w: 12, h: 12, fill: COLORS[ai % COLORS.length] });
    marks.push({
      kind: "text",
      x: x + 16,
      y: height - 20,
      text: arm,
      size: 10,
      color: "#222222",
      anchor: "start",
    });
  });
  const drawing = { width, height, marks };
  await atomicWriteText(`${dir}/table3.svg`, toSvg(drawing));
  await atomicWrite(`${dir}/table3.png`, await encodePng(rasterize(drawing, 2)));
}
