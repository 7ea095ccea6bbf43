// Shared helpers of the interpolant and closed-form tests: seeded point sets, the mixture density
// rho_t written out independently of the code under test (float64, log-sum-exp), finite
// differences, and a driver that runs the closed-form generator stage end to end.

import { from, lastValueFrom, toArray } from "rxjs";
import { kNearest } from "../../../../core/nearest.ts";
import { Rng } from "../../../../core/rng.ts";
import { imageSize } from "../../../../core/batch.ts";
import type { Dataset } from "../../../../core/batch.ts";
import { resolveSection } from "../../../../core/schema.ts";
import type { GeneratorStage } from "../../../../core/stage.ts";
import { closedForm } from "../../../../stages/generate/closed_form.ts";
import { makeDataset } from "../../../../stages/load/dataset.ts";
import { anchorBatches } from "../../../../stages/load/source.ts";
import type { Coefficients } from "../../../../stages/generate/interpolant/schedule.ts";
import type { Points } from "../../../../stages/generate/interpolant/field.ts";

/** n points of dimension d, uniform on [lo, hi), from a named seeded stream. */
export function randomPoints(n: number, d: number, stream: string, lo = 0, hi = 1): Points {
  const rng = new Rng(7, "interpolant-test", stream);
  const y = Float32Array.from({ length: n * d }, () => lo + (hi - lo) * rng.uniform());
  return { y, n, d };
}

/** b x d standard normal values. */
export function normals(count: number, stream: string, scale = 1): Float64Array {
  const rng = new Rng(7, "interpolant-test", stream);
  return Float64Array.from({ length: count }, () => scale * rng.normal());
}

function logSumExp(v: number[]): number {
  const max = Math.max(...v);
  if (max === -Infinity) return -Infinity;
  let s = 0;
  for (const x of v) s += Math.exp(x - max);
  return max + Math.log(s);
}

/**
 * log of a Gaussian mixture sum_j w_j N(mu_j, s2 I) at x: the centres as a [J * d] array,
 * log-weights per centre.
 */
export function logMixture(
  centres: Float64Array,
  logWeights: Float64Array,
  s2: number,
  x: ArrayLike<number>,
): number {
  const d = x.length;
  const terms: number[] = [];
  for (let j = 0; j < logWeights.length; j++) {
    let dist = 0;
    for (let v = 0; v < d; v++) dist += (x[v] - centres[j * d + v]) ** 2;
    terms.push(logWeights[j] - dist / (2 * s2));
  }
  return logSumExp(terms) - (d / 2) * Math.log(2 * Math.PI * s2);
}

/** log rho_t for the Gaussian base: sum_i w_i N(beta y_i, sigma^2 I). */
export function logRhoGaussianBase(points: Points, c: Coefficients, x: ArrayLike<number>): number {
  const { y, n, d } = points;
  const centres = new Float64Array(n * d);
  for (let k = 0; k < n * d; k++) centres[k] = c.beta * y[k];
  const logW = points.logWeights ?? new Float64Array(n).fill(-Math.log(n));
  return logMixture(centres, logW, c.alpha ** 2 + c.gamma ** 2, x);
}

/** log rho_t for both ends: sum_ki pi_ki N(alpha a_k + beta y_i, gamma^2 I), pi = 1 / (K N). */
export function logRhoBothEnds(
  base: Points,
  target: Points,
  c: Coefficients,
  x: ArrayLike<number>,
): number {
  const d = target.d;
  const centres = new Float64Array(base.n * target.n * d);
  for (let k = 0; k < base.n; k++) {
    for (let i = 0; i < target.n; i++) {
      for (let v = 0; v < d; v++) {
        centres[(k * target.n + i) * d + v] = c.alpha * base.y[k * d + v] +
          c.beta * target.y[i * d + v];
      }
    }
  }
  const logW = new Float64Array(base.n * target.n).fill(-Math.log(base.n * target.n));
  return logMixture(centres, logW, c.gamma ** 2, x);
}

/** Central-difference gradient of f at x with step h. */
export function fdGradient(f: (x: Float64Array) => number, x: Float64Array, h: number) {
  const g = new Float64Array(x.length);
  for (let v = 0; v < x.length; v++) {
    const p = x.slice();
    const m = x.slice();
    p[v] += h;
    m[v] -= h;
    g[v] = (f(p) - f(m)) / (2 * h);
  }
  return g;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let k = 0; k < a.length; k++) m = Math.max(m, Math.abs(a[k]));
  return m;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let k = 0; k < a.length; k++) m = Math.max(m, Math.abs(a[k] - b[k]));
  return m;
}

export function norm(a: ArrayLike<number>): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k] * a[k];
  return Math.sqrt(s);
}

/** What one generator run produced, concatenated over its batches. */
export interface Generated {
  readonly images: Float32Array;
  readonly labels: Int32Array;
  readonly ids: Int32Array;
  readonly batches: number;
  readonly facts: Record<string, unknown>;
}

/**
 * Runs a generator (the closed-form one unless `stage` says) on `count` anchors of `train` cut
 * into batches of `batchSize`, with `params` as a config's generate.params.
 */
export async function generate(
  params: Record<string, unknown>,
  train: Dataset,
  count: number,
  batchSize: number,
  seed: number,
  stage: GeneratorStage = closedForm,
): Promise<Generated> {
  const facts: Record<string, unknown> = {};
  const operator = stage.create(
    resolveSection(stage.params, params, "generate.params."),
    { seed, train, report: (f) => Object.assign(facts, f) },
  );
  const out = await lastValueFrom(
    from(anchorBatches(train, count, batchSize, seed)).pipe(operator, toArray()),
  );
  const d = imageSize(train.shape);
  const images = new Float32Array(count * d);
  const labels = new Int32Array(count);
  const ids = new Int32Array(count);
  let offset = 0;
  for (const b of out) {
    images.set(b.images, offset * d);
    labels.set(b.labels, offset);
    ids.set(b.ids, offset);
    offset += b.shape[0];
  }
  if (offset !== count) throw new Error(`generated ${offset} images, wanted ${count}`);
  return { images, labels, ids, batches: out.length, facts };
}

/** Per sample: distance to the nearest and second-nearest training image, and the nearest's index. */
export function nearestTwo(images: Float32Array, train: Dataset) {
  const d = imageSize(train.shape);
  const { index, distance } = kNearest(images, train.images, d, 2);
  const n = images.length / d;
  return {
    nearest: Float64Array.from({ length: n }, (_, q) => distance[2 * q]),
    second: Float64Array.from({ length: n }, (_, q) => distance[2 * q + 1]),
    index: Int32Array.from({ length: n }, (_, q) => index[2 * q]),
  };
}

export function mean(a: ArrayLike<number>): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k];
  return s / a.length;
}

export function median(a: ArrayLike<number>): number {
  const s = Array.from(a).sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** A labelled dataset of points in R^d (shape [n, 1, d, 1]) from a flat array. */
export function pointDataset(
  name: string,
  values: number[],
  d: number,
  labels?: number[],
): Dataset {
  const n = values.length / d;
  return makeDataset(
    name,
    Float32Array.from(values),
    [n, 1, d, 1],
    Int32Array.from(labels ?? new Array(n).fill(0)),
  );
}

/** k points on a circle of radius r in the plane: separation 2 r sin(pi / k). */
export function circle(k: number, r: number): number[] {
  const out: number[] = [];
  for (let j = 0; j < k; j++) {
    out.push(r * Math.cos((2 * Math.PI * j) / k), r * Math.sin((2 * Math.PI * j) / k));
  }
  return out;
}
