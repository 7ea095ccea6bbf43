// Reproduces the paper's Figures 1 to 4 on its 2-D toy (and Fig. 5, the smoothed closed form): 5 random training points, the exact
// optimal field of that set (exactField, Prop. 1 and 2) integrated by the generator stage's own
// sampler (integrate) on the linear path x_t = (1 - t) x0 + t x1, with the same seeded streams as
// the closed-form generator. Writes docs/figures/fig{1..4}_*.svg and .png:
//
//   deno task figures
//
// The builders return the numbers they plot, so tests/docs/figures_test.ts checks the paper's
// claims on exactly the data in the figures.

import { Rng } from "../core/rng.ts";
import { exactField } from "../stages/generate/interpolant/field.ts";
import type { Field, Points } from "../stages/generate/interpolant/field.ts";
import {
  fixedSmoothedField,
  freshSmoothedField,
} from "../stages/generate/interpolant/smoothing.ts";
import { integrate } from "../stages/generate/interpolant/samplers.ts";
import type { SamplerOptions } from "../stages/generate/interpolant/samplers.ts";
import { interpolant } from "../stages/generate/interpolant/schedule.ts";
import { writeFigure } from "../core/plot/figure.ts";
import type { Figure, Panel } from "../core/plot/figure.ts";

/**
 * The toy: N points uniform in [-range, range]^2. Seed 3 is a fixed seed whose 5 points are at
 * least 1 apart, so the clusters around them stay apart in the plots.
 */
export const TOY = { seed: 3, n: 5, range: 2, samples: 500 } as const;

/** The plots' window, [-WINDOW, WINDOW]^2. */
export const WINDOW = 3;
/** "On a training point": within this distance of one (the plots' marker size is about 0.06). */
export const NEAR = 0.05;
/** "Diverged": farther than this from every training point. */
export const FAR = 1e3;

const BLUE = "#1f5fd6";
const RED = "#e0261b";

export function toyPoints(seed: number = TOY.seed, n: number = TOY.n): Points {
  const rng = new Rng(seed, "figures-toy");
  const y = Float32Array.from({ length: 2 * n }, () => (2 * rng.uniform() - 1) * TOY.range);
  return { y, n, d: 2 };
}

/** One sampler run: the samples and each one's distance to its nearest training point. */
export interface Run {
  readonly x: Float64Array;
  readonly nearest: Float64Array;
  readonly nfe: number;
}

const BASE_SAMPLER: SamplerOptions = {
  method: "euler",
  steps: 100,
  tStart: 0,
  tEnd: 1,
  epsForm: "constant",
  eps0: 0,
  lastStep: "none",
  error: { model: "none" },
};

/**
 * Generates `count` samples from N(0, I) on the linear path with the exact field of `points`.
 * Starts, Brownian increments and error directions come from the closed-form generator's streams.
 */
export async function generate(
  points: Points,
  sampler: Partial<SamplerOptions>,
  count: number = TOY.samples,
  seed: number = TOY.seed,
  field: Field = exactField(points),
): Promise<Run> {
  const d = points.d;
  const x = new Float64Array(count * d);
  const noise: Rng[] = [];
  const directions = new Float64Array(count * d);
  for (let q = 0; q < count; q++) {
    const start = new Rng(seed, "closed-form-x0", q);
    for (let v = 0; v < d; v++) x[q * d + v] = start.normal();
    noise.push(new Rng(seed, "closed-form-sde", q));
    const dir = new Rng(seed, "closed-form-error", q);
    let norm = 0;
    for (let v = 0; v < d; v++) norm += (directions[q * d + v] = dir.normal()) ** 2;
    for (let v = 0; v < d; v++) directions[q * d + v] /= Math.sqrt(norm);
  }
  const interp = interpolant({ schedule: "linear", gamma: "none" });
  const o = { ...BASE_SAMPLER, ...sampler };
  const { nfe } = await integrate(interp, field, x, count, o, noise, directions);
  return { x, nearest: nearestDistances(points, x), nfe };
}

/** Distance from each sample to its nearest training point. */
export function nearestDistances(points: Points, x: Float64Array): Float64Array {
  const { y, n, d } = points;
  const count = x.length / d;
  return Float64Array.from({ length: count }, (_, q) => {
    let best = Infinity;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let v = 0; v < d; v++) s += (x[q * d + v] - y[i * d + v]) ** 2;
      best = Math.min(best, s);
    }
    return Math.sqrt(best);
  });
}

/** Root mean square of the per-axis offsets from the nearest training point. */
export function axisSpread(points: Points, x: Float64Array): number {
  const { y, n, d } = points;
  let sum = 0;
  for (let q = 0; q < x.length / d; q++) {
    let best = 0, bestD = Infinity;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let v = 0; v < d; v++) s += (x[q * d + v] - y[i * d + v]) ** 2;
      if (s < bestD) [best, bestD] = [i, s];
    }
    for (let v = 0; v < d; v++) sum += (x[q * d + v] - y[best * d + v]) ** 2;
  }
  return Math.sqrt(sum / x.length);
}

/**
 * Predicted per-axis spread of Euler-Maruyama with constant eps on the linear path, once the
 * posterior is one-hot on y: e = x - t y obeys e' = e (1 - h/(1-t) - eps h/(1-t)^2) + sqrt(2 eps h) xi,
 * so Var e follows v' = a^2 v + 2 eps h from v = 1 at t = 0. The last step (1 - t = h) has
 * a = -eps/h: it amplifies the jitter left at t = 1 - h, which is why the result is Gaussian.
 */
export function predictedEmSpread(eps: number, steps: number): number {
  const h = 1 / steps;
  let v = 1;
  for (let k = 0; k < steps; k++) {
    const s = 1 - k * h;
    const a = 1 - h / s - (eps * h) / (s * s);
    v = a * a * v + 2 * eps * h;
  }
  return Math.sqrt(v);
}

export function median(values: Float64Array): number {
  const s = Float64Array.from(values).sort();
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function countBelow(values: Float64Array, limit: number): number {
  return values.reduce((c, v) => c + (v < limit ? 1 : 0), 0);
}

export function maxOf(values: Float64Array): number {
  return values.reduce((m, v) => Math.max(m, v), -Infinity);
}

/** Compact number for notes: 3 significant digits, exponent form outside [1e-3, 1e4). */
export function fmt(v: number): string {
  if (v === 0) return "0";
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a < 1e-3 || a >= 1e4) return Number(v.toPrecision(2)).toExponential().replace("e+", "e");
  return String(Number(v.toPrecision(3)));
}

function panel(
  title: string,
  points: Points,
  x: Float64Array,
  notes: string[],
  window: number = WINDOW,
): Panel {
  return {
    title,
    notes,
    xlim: [-window, window],
    ylim: [-window, window],
    series: [
      {
        name: `training points (${points.n})`,
        xy: Float64Array.from(points.y),
        color: BLUE,
        radius: 5.5,
      },
      {
        name: `generated (${x.length / points.d})`,
        xy: x,
        color: RED,
        radius: 2,
        opacity: 0.75,
      },
    ],
  };
}

/** The result of one figure: what to draw and the numbers behind it. */
export interface FigureResult<T> {
  readonly figure: Figure;
  readonly runs: T[];
}

export interface Fig1Run {
  readonly label: string;
  readonly eps: number;
  readonly run: Run;
  /** Per-axis RMS offset from the nearest training point, and its prediction. */
  readonly spread: number;
  readonly predicted: number;
}

export const FIG1 = { steps: 100, eps: [0.02, 0.04, 0.06] } as const;

/** Fig. 1: deterministic generation reproduces the training set; stochastic adds Gaussian noise. */
export async function figure1(
  points = toyPoints(),
  count: number = TOY.samples,
): Promise<FigureResult<Fig1Run>> {
  const runs: Fig1Run[] = [];
  const ode = await generate(points, { method: "euler", steps: FIG1.steps }, count);
  runs.push({ label: "ode", eps: 0, run: ode, spread: axisSpread(points, ode.x), predicted: 0 });
  for (const eps of FIG1.eps) {
    const run = await generate(points, { method: "em", steps: FIG1.steps, eps0: eps }, count);
    runs.push({
      label: `sde ${eps}`,
      eps,
      run,
      spread: axisSpread(points, run.x),
      predicted: predictedEmSpread(eps, FIG1.steps),
    });
  }
  const letters = "abcd";
  const panels = runs.map((r, k) =>
    r.eps === 0
      ? panel("(a) deterministic (ODE)", points, r.run.x, [
        `Euler, ${FIG1.steps} steps`,
        `max distance to the training set: ${fmt(maxOf(r.run.nearest))}`,
      ])
      : panel(`(${letters[k]}) stochastic (SDE), eps = ${r.eps}`, points, r.run.x, [
        `Euler-Maruyama, ${FIG1.steps} steps, constant eps`,
        `spread per axis ${fmt(r.spread)} (predicted ${fmt(r.predicted)})`,
      ])
  );
  return {
    figure: {
      title: "Fig. 1  Deterministic vs stochastic generation (optimal field, 5 training points)",
      panels,
    },
    runs,
  };
}

export interface ErrorRun {
  readonly label: string;
  readonly value: number;
  readonly run: Run;
  /** The same run on a 10x coarser grid: how the result moves as h -> 0. */
  readonly coarse: Run;
}

async function errorRuns(
  points: Points,
  values: readonly number[],
  error: (v: number) => SamplerOptions["error"],
  steps: number,
  count: number,
): Promise<ErrorRun[]> {
  const runs: ErrorRun[] = [];
  for (const value of values) {
    const run = await generate(points, { steps, error: error(value) }, count);
    const coarse = await generate(points, { steps: steps / 10, error: error(value) }, count);
    runs.push({ label: String(value), value, run, coarse });
  }
  return runs;
}

export const FIG2 = { steps: 1000, c: [1, 5, 25] } as const;

/** Fig. 2 (Corollary 1): a bounded error |delta| = C still lands on the training points. */
export async function figure2(
  points = toyPoints(),
  count: number = TOY.samples,
): Promise<FigureResult<ErrorRun>> {
  const runs = await errorRuns(points, FIG2.c, (c) => ({ model: "bounded", c }), FIG2.steps, count);
  const h = 1 / FIG2.steps;
  const panels = runs.map((r, k) =>
    panel(`(${"abc"[k]}) bounded error, C = ${r.value}`, points, r.run.x, [
      `ODE, Euler ${FIG2.steps} steps (h = ${h})`,
      `max distance ${fmt(maxOf(r.run.nearest))} = C h; ${
        countBelow(r.run.nearest, NEAR)
      }/${count} within ${NEAR}`,
    ])
  );
  return {
    figure: { title: "Fig. 2  Bounded estimation error |delta| <= C (Corollary 1)", panels },
    runs,
  };
}

export const FIG3 = { steps: 1000, c: 0.5, p: [0.5, 1, 1.5] } as const;

/** Fig. 3 (Corollary 2): |delta| = C (1 - t)^(-p) converges (p < 1), stays near (p = 1), diverges. */
export async function figure3(
  points = toyPoints(),
  count: number = TOY.samples,
): Promise<FigureResult<ErrorRun>> {
  const runs = await errorRuns(
    points,
    FIG3.p,
    (p) => ({ model: "time-scaled", c: FIG3.c, p }),
    FIG3.steps,
    count,
  );
  const verdict = (p: number) => p < 1 ? "converges" : p === 1 ? "stays near" : "diverges";
  const panels = runs.map((r, k) => {
    const far = maxOf(r.run.nearest) > WINDOW;
    // A diverging panel zooms out to show where the samples went.
    const window = far ? niceWindow(r.run.x) : WINDOW;
    return panel(`(${"abc"[k]}) p = ${r.value}: ${verdict(r.value)}`, points, r.run.x, [
      `C = ${FIG3.c}; ODE, Euler ${FIG3.steps} steps`,
      `median distance ${fmt(median(r.run.nearest))} (${fmt(median(r.coarse.nearest))} at ${
        FIG3.steps / 10
      } steps)`,
    ], window);
  });
  return {
    figure: { title: "Fig. 3  Time-scaled error |delta| = C (1 - t)^(-p) (Corollary 2)", panels },
    runs,
  };
}

/** A symmetric window that holds every point, rounded up to 1, 2 or 5 times a power of ten. */
function niceWindow(x: Float64Array): number {
  const m = x.reduce((a, v) => Math.max(a, Math.abs(v)), 0) * 1.05;
  const power = Math.pow(10, Math.floor(Math.log10(m)));
  return [1, 2, 5, 10].map((k) => k * power).find((w) => w >= m) ?? 10 * power;
}

export const FIG4 = { steps: 1000, eps0: [1, 0.1, 1e-4] } as const;

/** Fig. 4 (Corollary 3): delta = eps0 / density; large eps0 underfits (diverges), small overfits. */
export async function figure4(
  points = toyPoints(),
  count: number = TOY.samples,
): Promise<FigureResult<ErrorRun>> {
  const runs = await errorRuns(
    points,
    FIG4.eps0,
    (eps0) => ({ model: "density-inverse", eps0 }),
    FIG4.steps,
    count,
  );
  const regime = (k: number) =>
    k === 0 ? "underfitting" : k === runs.length - 1 ? "overfitting" : "in between";
  const panels = runs.map((r, k) => {
    const near = countBelow(r.run.nearest, NEAR);
    const far = count - countBelow(r.run.nearest, FAR);
    return panel(`(${"abc"[k]}) eps0 = ${fmt(r.value)}: ${regime(k)}`, points, r.run.x, [
      `${far}/${count} diverged (> ${fmt(FAR)}; hollow = off the plot)`,
      `${near}/${count} within ${NEAR}; median distance ${fmt(median(r.run.nearest))}`,
    ]);
  });
  return {
    figure: {
      title:
        "Fig. 4  Density-inverse error delta = eps0 exp(min |x - t y|^2 / 2 sigma^2) (Corollary 3)",
      panels,
    },
    runs,
  };
}

/**
 * Data near a 1-D subspace (seed 002's setting): n points evenly spaced on a segment of the line
 * y = x / 2 through the origin, each moved off it by a seeded N(0, 0.02^2).
 */
export function linePoints(n = 6): Points {
  const rng = new Rng(TOY.seed, "figures-line");
  const y = new Float32Array(2 * n);
  const [ux, uy] = [2 / Math.sqrt(5), 1 / Math.sqrt(5)];
  for (let i = 0; i < n; i++) {
    const s = -2.5 + (5 * i) / (n - 1);
    y[2 * i] = s * ux - 0.02 * rng.normal() * uy;
    y[2 * i + 1] = s * uy + 0.02 * rng.normal() * ux;
  }
  return { y, n, d: 2 };
}

/** Distance of each sample from the line y = x / 2. */
export function offLine(x: Float64Array): Float64Array {
  return Float64Array.from(
    { length: x.length / 2 },
    (_, q) => Math.abs(x[2 * q + 1] - x[2 * q] / 2) * 2 / Math.sqrt(5),
  );
}

export const FIG5 = {
  steps: 200,
  toySigma: 0.7,
  lineSigma: 0.5,
  draws: 4,
  freshDraws: 16,
} as const;

export interface Fig5Run {
  readonly label: string;
  readonly points: Points;
  readonly run: Run;
}

/**
 * Fig. 5: the smoothed closed form creates. On the toy the exact ODE lands on the 5 points, fixed
 * smoothing draws on barycenters of nearby points (the segments between them); on data near a
 * line, fresh smoothing fills the segments between neighbouring points along the line.
 */
export async function figure5(
  points = toyPoints(),
  count: number = TOY.samples,
): Promise<FigureResult<Fig5Run>> {
  const line = linePoints();
  const streams = (stream: string) =>
    Array.from({ length: count }, (_, q) => new Rng(TOY.seed, stream, q));
  const sampler = { method: "euler", steps: FIG5.steps } as const;
  const smoothedRun = (p: Points, fixed: boolean, sigma: number) =>
    generate(
      p,
      sampler,
      count,
      TOY.seed,
      fixed
        ? fixedSmoothedField(p, sigma, FIG5.draws, streams("smoothed-xi"))
        : freshSmoothedField(exactField(p), sigma, FIG5.freshDraws, streams("smoothed-xi")),
    );
  const runs: Fig5Run[] = [
    { label: "toy exact", points, run: await generate(points, sampler, count) },
    { label: "toy fixed", points, run: await smoothedRun(points, true, FIG5.toySigma) },
    { label: "line exact", points: line, run: await generate(line, sampler, count) },
    { label: "line fresh", points: line, run: await smoothedRun(line, false, FIG5.lineSigma) },
  ];
  const near = (r: Run) => `${countBelow(r.nearest, NEAR)}/${count} within ${NEAR} of a point`;
  const along = (r: Run) => `median distance from the line ${fmt(median(offLine(r.x)))}`;
  const panels = [
    panel("(a) exact closed form (ODE)", points, runs[0].run.x, [near(runs[0].run)]),
    panel(
      `(b) smoothed, fixed, sigma_s = ${FIG5.toySigma}, M = ${FIG5.draws}`,
      points,
      runs[1].run.x,
      [near(runs[1].run), `median distance to a point ${fmt(median(runs[1].run.nearest))}`],
    ),
    panel("(c) near a line: exact closed form", line, runs[2].run.x, [near(runs[2].run)]),
    panel(
      `(d) line: smoothed, fresh, sigma_s = ${FIG5.lineSigma}, M = ${FIG5.freshDraws}`,
      line,
      runs[3].run.x,
      [near(runs[3].run), along(runs[3].run)],
    ),
  ];
  return {
    figure: {
      title: "Fig. 5  The smoothed closed form fills the space between training points",
      panels,
    },
    runs,
  };
}

if (import.meta.main) {
  const out = new URL("./figures/", import.meta.url);
  await Deno.mkdir(out, { recursive: true });
  const points = toyPoints();
  console.log(`training points: ${Array.from(points.y, (v) => v.toFixed(3)).join(" ")}`);
  const jobs = [
    ["fig1_generation", figure1],
    ["fig2_bounded_error", figure2],
    ["fig3_time_scaled", figure3],
    ["fig4_density_inverse", figure4],
    ["fig5_smoothed", figure5],
  ] as const;
  for (const [name, build] of jobs) {
    const { figure } = await build(points);
    await writeFigure(figure, new URL(name, out).pathname);
    console.log(`docs/figures/${name}.{svg,png}`);
    for (const p of figure.panels) console.log(`  ${p.title}: ${(p.notes ?? []).join("; ")}`);
  }
}
