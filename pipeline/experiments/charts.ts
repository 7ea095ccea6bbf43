// The experiments' two charts, drawn as core/plot marks and written as SVG and PNG: bars with
// error bars (an arm per colour, grouped by learner: Table 3), and lines over a logarithmic size
// axis with error bars (a setting per colour, a panel per data set: Tables 1 and 2).

import { atomicWriteAll } from "../../core/files.ts";
import { niceTicks } from "../../core/plot/figure.ts";
import type { Drawing, Mark } from "../../core/plot/marks.ts";
import { encodePng } from "../../core/plot/png.ts";
import { rasterize } from "../../core/plot/raster.ts";
import { toSvg } from "../../core/plot/svg.ts";

export const COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3"];
const INK = "#222222";

/** A value with its error bar (lo, hi); lo = hi = mean draws no bar. */
export interface Estimate {
  readonly mean: number;
  readonly lo: number;
  readonly hi: number;
}

/** `<base>.svg` and `<base>.png`, written together atomically. */
export async function writeDrawing(drawing: Drawing, base: string): Promise<void> {
  await atomicWriteAll([
    { path: `${base}.svg`, bytes: new TextEncoder().encode(toSvg(drawing)) },
    { path: `${base}.png`, bytes: await encodePng(rasterize(drawing, 2)) },
  ]);
}

function text(x: number, y: number, s: string, size: number, anchor: "start" | "middle" | "end") {
  return { kind: "text", x, y, text: s, size, color: INK, anchor } as const;
}

function errorBar(
  marks: Mark[],
  x: number,
  y0: number,
  y1: number,
  half: number,
  color = INK,
  width = 1.5,
): void {
  marks.push({ kind: "line", x0: x, y0, x1: x, y1, width, color });
  for (const y of [y0, y1]) {
    marks.push({ kind: "line", x0: x - half, y0: y, x1: x + half, y1: y, width, color });
  }
}

const entryWidth = (name: string) => 20 + 6 * name.length + 20;

/** Legend entries (swatch, name) in rows no wider than `width`; returns the rows used. */
function legend(marks: Mark[], names: readonly string[], x0: number, y: number, width = Infinity) {
  let [x, row] = [x0, 0];
  names.forEach((name, i) => {
    if (x > x0 && x + entryWidth(name) > x0 + width) [x, row] = [x0, row + 1];
    const top = y + 18 * row;
    marks.push({ kind: "rect", x, y: top - 10, w: 12, h: 12, fill: COLORS[i % COLORS.length] });
    marks.push(text(x + 16, top, name, 10, "start"));
    x += entryWidth(name);
  });
  return row + 1;
}

function legendWidth(names: readonly string[]): number {
  return names.reduce((w, n) => w + entryWidth(n), 0);
}

/**
 * Bars per group (x) and series (colour), with error bars, on a grid of `step` points (5).
 * Accuracies (`signed` false) sit on [0, 100] with bars from the axis; signed values (paired
 * differences) get an axis that includes 0 and bars that start at 0.
 */
export function barChart(spec: {
  readonly title: string;
  readonly groups: readonly string[];
  readonly series: readonly string[];
  readonly value: (group: string, series: string) => Estimate | undefined;
  readonly step?: number;
  readonly signed?: boolean;
}): Drawing {
  const { groups, series } = spec;
  const step = spec.step ?? 5;
  const width = Math.max(
    120 + groups.length * (series.length * 36 + 30),
    100 + legendWidth(series),
  );
  const height = 300;
  const [top, bottom] = [40, 240];
  const all = groups.flatMap((g) => series.map((s) => spec.value(g, s))).filter((e) => e);
  const min = Math.min(...all.map((e) => Number.isFinite(e!.lo) ? e!.lo : e!.mean));
  const max = Math.max(...all.map((e) => Number.isFinite(e!.hi) ? e!.hi : e!.mean));
  const lo = spec.signed
    ? Math.min(0, Math.floor(min / step) * step - step)
    : Math.max(0, Math.floor(min / step) * step - step);
  const hi = spec.signed
    ? Math.max(0, Math.ceil(max / step) * step + step)
    : Math.min(100, Math.ceil(max / step) * step + step);
  const base = spec.signed ? 0 : lo;
  const y = (v: number) => bottom - ((v - lo) / (hi - lo)) * (bottom - top);
  const marks: Mark[] = [
    { kind: "rect", x: 0, y: 0, w: width, h: height, fill: "#ffffff" },
    { ...text(width / 2, 22, spec.title, 12, "middle"), bold: true },
    { kind: "line", x0: 70, y0: top, x1: 70, y1: bottom, width: 1, color: INK },
    { kind: "line", x0: 70, y0: bottom, x1: width - 20, y1: bottom, width: 1, color: INK },
  ];
  for (let k = 0; lo + k * step <= hi + 1e-9; k++) {
    const v = lo + k * step;
    marks.push({ kind: "line", x0: 66, y0: y(v), x1: 70, y1: y(v), width: 1, color: INK });
    marks.push(text(62, y(v) + 4, String(Number(v.toFixed(6))), 10, "end"));
  }
  if (spec.signed) {
    marks.push({ kind: "line", x0: 70, y0: y(0), x1: width - 20, y1: y(0), width: 1, color: INK });
  }
  groups.forEach((group, gi) => {
    const x0 = 90 + gi * (series.length * 36 + 30);
    series.forEach((s, si) => {
      const e = spec.value(group, s);
      if (!e) return;
      const x = x0 + si * 36;
      const fill = COLORS[si % COLORS.length];
      const [y0, y1] = [y(Math.max(e.mean, base)), y(Math.min(e.mean, base))];
      marks.push({ kind: "rect", x, y: y0, w: 28, h: y1 - y0, fill });
      if (Number.isFinite(e.lo) && Number.isFinite(e.hi)) {
        errorBar(marks, x + 14, y(e.hi), y(e.lo), 6);
      }
    });
    marks.push(text(x0 + (series.length * 36) / 2 - 4, bottom + 16, group, 11, "middle"));
  });
  legend(marks, series, 80, height - 20);
  return { width, height, marks };
}

/** One panel: lines over x (drawn on a log scale), one per series, each point with its bar. */
export interface LinePanel {
  readonly title: string;
  readonly xs: readonly number[];
  readonly series: readonly {
    readonly name: string;
    readonly points: readonly (Estimate | undefined)[];
    /** Reference values at the same xs (the paper's), drawn as hollow markers. */
    readonly reference?: readonly (number | undefined)[];
  }[];
}

/** Panels side by side sharing the legend; x log-scaled with a tick per x, y on nice ticks. */
export function lineChart(spec: {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly panels: readonly LinePanel[];
}): Drawing {
  const [plot, left, gap] = [300, 60, 30];
  const names = spec.panels[0]?.series.map((s) => s.name) ?? [];
  const width = Math.max(spec.panels.length * (left + plot + gap) + 20, 500);
  const legendMarks: Mark[] = [];
  const rows = legend(legendMarks, names, 20, 46, width - 40);
  const top = 46 + 18 * rows + 24;
  const height = top + plot + 70;
  const marks: Mark[] = [
    { kind: "rect", x: 0, y: 0, w: width, h: height, fill: "#ffffff" },
    { ...text(width / 2, 22, spec.title, 12, "middle"), bold: true },
    ...legendMarks,
  ];
  spec.panels.forEach((panel, k) => {
    const x0 = 10 + k * (left + plot + gap) + left;
    const values = panel.series.flatMap((s) => [
      ...s.points.flatMap((e) => (e ? [e.lo, e.hi, e.mean] : [])),
      ...(s.reference ?? []).filter((v): v is number => v !== undefined),
    ]).filter(Number.isFinite);
    const lo = Math.floor(Math.min(...values) - 1);
    const hi = Math.ceil(Math.max(...values) + 1);
    const lx = panel.xs.map(Math.log10);
    const [xmin, xmax] = [Math.min(...lx), Math.max(...lx)];
    const pad = xmax > xmin ? 0.06 * (xmax - xmin) : 0.5;
    const px = (n: number) => x0 + ((Math.log10(n) - xmin + pad) / (xmax - xmin + 2 * pad)) * plot;
    const py = (v: number) => top + plot - ((v - lo) / (hi - lo)) * plot;
    marks.push({ ...text(x0 + plot / 2, top - 8, panel.title, 12, "middle"), bold: true });
    for (const v of niceTicks(lo, hi)) {
      marks.push({
        kind: "line",
        x0,
        y0: py(v),
        x1: x0 + plot,
        y1: py(v),
        width: 0.8,
        color: "#e6e6e6",
      });
      marks.push(text(x0 - 6, py(v) + 3.5, String(v), 10, "end"));
    }
    for (const n of panel.xs) {
      marks.push({
        kind: "line",
        x0: px(n),
        y0: top + plot,
        x1: px(n),
        y1: top + plot + 4,
        width: 1,
        color: INK,
      });
      marks.push(text(px(n), top + plot + 16, String(n), 10, "middle"));
    }
    marks.push(text(x0 + plot / 2, top + plot + 32, spec.xLabel, 10, "middle"));
    marks.push({ ...text(x0 - 40, top + plot / 2, spec.yLabel, 10, "middle"), up: true });
    panel.series.forEach((s, si) => {
      const color = COLORS[si % COLORS.length];
      // Series side by side around each x, so equal values and their bars stay apart.
      const dodge = (si - (panel.series.length - 1) / 2) * 4;
      let last: [number, number] | null = null;
      s.points.forEach((e, i) => {
        if (!e) {
          last = null;
          return;
        }
        const p: [number, number] = [px(panel.xs[i]) + dodge, py(e.mean)];
        if (last) {
          marks.push({
            kind: "line",
            x0: last[0],
            y0: last[1],
            x1: p[0],
            y1: p[1],
            width: 1.5,
            color,
          });
        }
        last = p;
        if (Number.isFinite(e.lo)) errorBar(marks, p[0], py(e.hi), py(e.lo), 2, color, 1);
        marks.push({ kind: "circle", cx: p[0], cy: p[1], r: 3, fill: color });
      });
      s.reference?.forEach((v, i) => {
        if (v === undefined) return;
        marks.push({
          kind: "circle",
          cx: px(panel.xs[i]) + dodge,
          cy: py(v),
          r: 3.5,
          stroke: color,
          strokeWidth: 1,
        });
      });
    });
    marks.push({
      kind: "rect",
      x: x0,
      y: top,
      w: plot,
      h: plot,
      stroke: "#555555",
      strokeWidth: 1,
    });
  });
  return { width, height, marks };
}
