// Scatter-plot figures: a row of square panels with a title, axes with ticks, a few notes under
// each plot and a shared legend. layout() turns a figure into marks; writeFigure() writes the same
// marks as SVG and PNG. Points outside a panel's window are drawn pinned to its edge as hollow
// markers (and counted by the caller's notes), so nothing leaves a plot silently.

import type { Drawing, Mark } from "./marks.ts";
import { encodePng } from "./png.ts";
import { rasterize } from "./raster.ts";
import { toSvg } from "./svg.ts";

export interface Series {
  /** Legend label (the legend lists the first panel's series). */
  readonly name: string;
  /** Interleaved x, y. */
  readonly xy: Float64Array;
  readonly color: string;
  /** Marker radius in units. */
  readonly radius: number;
  readonly opacity?: number;
}

export interface Panel {
  readonly title: string;
  /** Short lines under the axes, e.g. the measured numbers. */
  readonly notes?: readonly string[];
  readonly xlim: readonly [number, number];
  readonly ylim: readonly [number, number];
  /** Drawn in order: later series on top. */
  readonly series: readonly Series[];
  readonly xLabel?: string;
  readonly yLabel?: string;
}

export interface Figure {
  readonly title: string;
  readonly panels: readonly Panel[];
}

export const STYLE = {
  plot: 250,
  left: 50,
  right: 24,
  panelTop: 34,
  axisBottom: 40,
  noteLine: 15,
  header: 60,
  footer: 8,
  titleSize: 16,
  panelTitleSize: 12.5,
  tickSize: 10,
  noteSize: 10.5,
  ink: "#222222",
  grid: "#e6e6e6",
  frame: "#555555",
  muted: "#555555",
} as const;

/** About `count` round tick values (1, 2 or 5 times a power of ten) covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 6): number[] {
  const span = hi - lo;
  if (!(span > 0) || !Number.isFinite(span)) return [lo];
  const raw = span / count;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const ticks: number[] = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) {
    ticks.push(Math.abs(k * step) < step * 1e-9 ? 0 : k * step);
  }
  return ticks;
}

/** A tick label with as many decimals as the step needs, exponent form for extreme values. */
export function formatTick(v: number, step: number): string {
  if (v === 0) return "0";
  const a = Math.abs(step);
  if (a >= 1e5 || a < 1e-3) return Number(v.toPrecision(3)).toExponential().replace("e+", "e");
  return v.toFixed(decimals(step));
}

function decimals(step: number): number {
  for (let d = 0; d < 6; d++) {
    const s = Math.abs(step) * Math.pow(10, d);
    if (Math.abs(s - Math.round(s)) < 1e-6 * Math.max(1, s)) return d;
  }
  return 6;
}

/** Figure size in units. */
export function figureSize(fig: Figure): { width: number; height: number } {
  const s = STYLE;
  const notes = Math.max(0, ...fig.panels.map((p) => p.notes?.length ?? 0));
  return {
    width: fig.panels.length * (s.left + s.plot + s.right) + 10,
    height: s.header + s.panelTop + s.plot + s.axisBottom + notes * s.noteLine + s.footer,
  };
}

/** The figure as marks. */
export function layout(fig: Figure): Drawing {
  const s = STYLE;
  const { width, height } = figureSize(fig);
  const marks: Mark[] = [];
  marks.push({
    kind: "text",
    x: width / 2,
    y: 24,
    text: fig.title,
    size: s.titleSize,
    color: s.ink,
    anchor: "middle",
    bold: true,
  });
  // Legend: one entry per series of the first panel, centred under the title.
  const entries = fig.panels[0]?.series ?? [];
  const entryWidth = (e: Series) => 16 + e.name.length * 0.56 * s.noteSize + 22;
  let x = width / 2 - entries.reduce((w, e) => w + entryWidth(e), 0) / 2;
  for (const e of entries) {
    marks.push({ kind: "circle", cx: x + 5, cy: 43, r: Math.max(3, e.radius), fill: e.color });
    marks.push({
      kind: "text",
      x: x + 16,
      y: 47,
      text: e.name,
      size: s.noteSize,
      color: s.ink,
      anchor: "start",
    });
    x += entryWidth(e);
  }
  fig.panels.forEach((panel, k) => panelMarks(panel, 10 + k * (s.left + s.plot + s.right), marks));
  return { width, height, marks };
}

function panelMarks(panel: Panel, x0: number, marks: Mark[]): void {
  const s = STYLE;
  const left = x0 + s.left;
  const top = s.header + s.panelTop;
  const size = s.plot;
  const [xmin, xmax] = panel.xlim;
  const [ymin, ymax] = panel.ylim;
  const px = (v: number) => left + ((v - xmin) / (xmax - xmin)) * size;
  const py = (v: number) => top + size - ((v - ymin) / (ymax - ymin)) * size;

  marks.push({
    kind: "text",
    x: left + size / 2,
    y: top - 12,
    text: panel.title,
    size: s.panelTitleSize,
    color: s.ink,
    anchor: "middle",
    bold: true,
  });
  const xt = niceTicks(xmin, xmax);
  const yt = niceTicks(ymin, ymax);
  const xstep = xt.length > 1 ? xt[1] - xt[0] : 1;
  const ystep = yt.length > 1 ? yt[1] - yt[0] : 1;
  for (const v of xt) {
    const X = px(v);
    marks.push({ kind: "line", x0: X, y0: top, x1: X, y1: top + size, width: 0.8, color: s.grid });
    marks.push({
      kind: "line",
      x0: X,
      y0: top + size,
      x1: X,
      y1: top + size + 4,
      width: 1,
      color: s.frame,
    });
    marks.push({
      kind: "text",
      x: X,
      y: top + size + 16,
      text: formatTick(v, xstep),
      size: s.tickSize,
      color: s.muted,
      anchor: "middle",
    });
  }
  for (const v of yt) {
    const Y = py(v);
    marks.push({
      kind: "line",
      x0: left,
      y0: Y,
      x1: left + size,
      y1: Y,
      width: 0.8,
      color: s.grid,
    });
    marks.push({ kind: "line", x0: left - 4, y0: Y, x1: left, y1: Y, width: 1, color: s.frame });
    marks.push({
      kind: "text",
      x: left - 7,
      y: Y + 3.5,
      text: formatTick(v, ystep),
      size: s.tickSize,
      color: s.muted,
      anchor: "end",
    });
  }
  marks.push({
    kind: "text",
    x: left + size / 2,
    y: top + size + 31,
    text: panel.xLabel ?? "x1",
    size: s.tickSize,
    color: s.muted,
    anchor: "middle",
  });
  marks.push({
    kind: "text",
    x: left - 36,
    y: top + size / 2,
    text: panel.yLabel ?? "x2",
    size: s.tickSize,
    color: s.muted,
    anchor: "middle",
    up: true,
  });

  for (const series of panel.series) {
    for (let i = 0; i + 1 < series.xy.length; i += 2) {
      const [vx, vy] = [series.xy[i], series.xy[i + 1]];
      if (Number.isNaN(vx) || Number.isNaN(vy)) continue;
      const inside = vx >= xmin && vx <= xmax && vy >= ymin && vy <= ymax;
      // Off the window: pinned where the ray from the window's centre to the point leaves it.
      const [mx, my] = [(xmin + xmax) / 2, (ymin + ymax) / 2];
      const shrink = inside ? 1 : Math.min(
        Math.abs(vx - mx) > 0 ? (xmax - mx) / Math.abs(vx - mx) : Infinity,
        Math.abs(vy - my) > 0 ? (ymax - my) / Math.abs(vy - my) : Infinity,
      );
      const cx = px(mx + (vx - mx) * shrink);
      const cy = py(my + (vy - my) * shrink);
      marks.push(
        inside
          ? {
            kind: "circle",
            cx,
            cy,
            r: series.radius,
            fill: series.color,
            opacity: series.opacity,
          }
          : {
            kind: "circle",
            cx,
            cy,
            r: series.radius + 1,
            stroke: series.color,
            strokeWidth: 1,
            opacity: series.opacity,
          },
      );
    }
  }
  marks.push({ kind: "rect", x: left, y: top, w: size, h: size, stroke: s.frame, strokeWidth: 1 });
  (panel.notes ?? []).forEach((line, j) => {
    marks.push({
      kind: "text",
      x: left + size / 2,
      y: top + size + s.axisBottom + 10 + j * s.noteLine,
      text: line,
      size: s.noteSize,
      color: s.ink,
      anchor: "middle",
    });
  });
}

/** Writes `<base>.svg` and `<base>.png` (the PNG at `pxPerUnit` pixels per unit). */
export async function writeFigure(fig: Figure, base: string, pxPerUnit = 2): Promise<void> {
  const drawing = layout(fig);
  await Deno.writeTextFile(`${base}.svg`, toSvg(drawing));
  await Deno.writeFile(`${base}.png`, await encodePng(rasterize(drawing, pxPerUnit)));
}
