// The smoothed closed form (seed 002; Scarvelis et al. 2023, closed-form diffusion models): the
// exact denoiser m replaced by its average over a Gaussian neighbourhood of the query,
//   m~(t, x) = (1 / M) sum_k m(t, x + sigma_s xi_k),  xi_k ~ N(0, I),  sigma_s constant in t,
// with the velocity and score rebuilt from m~ by the closed form's own formulas. Two modes:
// "fresh" draws new xi_k at every evaluation (a Monte Carlo estimate of the smoothed field);
// "fixed" draws them once per trajectory (the sigma-CFDM form: at t -> 1 each m(x + sigma_s xi_k)
// is one training point, so a sample ends on a barycenter of M nearby training points, weights
// in multiples of 1 / M). At sigma_s = 0 both are the exact closed form.
//
// Fixed draws let the work against the training set be cached: with D_i = |x - beta y_i|^2,
//   |x + s xi_k - beta y_i|^2 = D_i - 2 s beta (xi_k . y_i) + (terms constant in i),
// and constants in i cancel in each softmax, so after one pass for xi_k . y_i per trajectory
// (M N d) a step costs one distance pass (N d), M N logits and one weighted sum of the y_i with
// the M softmaxes' weights averaged (N d): near the exact field's cost, not M times it.

import { Rng } from "../../core/rng.ts";
import { keyError } from "../../core/errors.ts";
import { defineGenerator } from "../../core/stage.ts";
import { CLOSED_FORM_PARAMS, closedFormDenoiser, closedFormOperator } from "./closed_form.ts";
import type { FieldTransform } from "./closed_form.ts";
import type { Resolved } from "../../core/schema.ts";
import type { Field, FieldValue, Points } from "./interpolant/field.ts";
import type { Coefficients } from "./interpolant/schedule.ts";

export const SMOOTHING_MODES = ["fresh", "fixed"] as const;

const params = {
  ...CLOSED_FORM_PARAMS,
  sigmaS: {
    type: "number",
    min: 0,
    default: 0.1,
    doc: "sigma_s: standard deviation of the smoothing per value (data scale; 0 = exact)",
  },
  draws: { type: "int", min: 1, default: 8, doc: "M: smoothing draws per query" },
  mode: {
    type: "enum",
    values: SMOOTHING_MODES,
    default: "fixed",
    doc: "fresh: new draws every evaluation; fixed: one set per trajectory (sigma-CFDM, cached)",
  },
} as const;

/** The M draws of one query, keyed by its sample id (a stream that continues step after step). */
function drawStreams(seed: number, ids: Int32Array): Rng[] {
  return Array.from(ids, (id) => new Rng(seed, "smoothed-xi", id));
}

/**
 * Running mean: out[at..] += (v[from..] - out[at..]) / (k + 1). Identical values leave it exactly
 * at that value, so sigma_s = 0 reproduces the exact field bit for bit.
 */
function meanStep(
  out: Float64Array,
  at: number,
  v: Float64Array,
  from: number,
  k: number,
  d: number,
) {
  for (let j = 0; j < d; j++) out[at + j] += (v[from + j] - out[at + j]) / (k + 1);
}

/**
 * Fresh draws: m~ at b queries is the inner field at the b M perturbed queries x_q + s xi_qk,
 * averaged over k. Works over any engine (the inner field sees b M rows in one call).
 */
export function freshSmoothedField(
  inner: Field,
  sigmaS: number,
  draws: number,
  streams: readonly Rng[],
): Field {
  const d = inner.d;
  return {
    d,
    bothEnds: inner.bothEnds,
    begin: (b) => inner.begin?.(b * draws),
    async evaluate(c: Coefficients, x: Float64Array, b: number): Promise<FieldValue> {
      const rows = new Float64Array(b * draws * d);
      for (let q = 0; q < b; q++) {
        for (let k = 0; k < draws; k++) {
          const row = (q * draws + k) * d;
          for (let j = 0; j < d; j++) rows[row + j] = x[q * d + j] + sigmaS * streams[q].normal();
        }
      }
      const v = await inner.evaluate(c, rows, b * draws);
      return averageDraws(v, b, draws, d);
    },
  };
}

/** The per-query mean of b M field values over their M draws (nearest2: the smallest). */
export function averageDraws(v: FieldValue, b: number, draws: number, d: number): FieldValue {
  const my = new Float64Array(b * d);
  const ma = v.ma ? new Float64Array(b * d) : null;
  const nearest2 = new Float64Array(b).fill(Infinity);
  for (let q = 0; q < b; q++) {
    for (let k = 0; k < draws; k++) {
      const r = q * draws + k;
      meanStep(my, q * d, v.my, r * d, k, d);
      if (ma && v.ma) meanStep(ma, q * d, v.ma, r * d, k, d);
      nearest2[q] = Math.min(nearest2[q], v.nearest2[r]);
    }
  }
  return { my, ma, nearest2 };
}

/**
 * Fixed draws over the Gaussian-base field of `points`, exact in float64, with xi_k . y_i cached
 * per trajectory (b M N values). nearest2 is the unperturbed query's.
 */
export function fixedSmoothedField(
  points: Points,
  sigmaS: number,
  draws: number,
  streams: readonly Rng[],
): Field {
  const { y, n, d } = points;
  let xiDotY = new Float64Array(0);
  let queries = 0;
  const dist = new Float64Array(n);
  const logits = new Float64Array(draws * n);
  const weights = new Float64Array(n);
  return {
    d,
    bothEnds: false,
    begin(b) {
      queries = b;
      xiDotY = new Float64Array(b * draws * n);
      const xi = new Float64Array(d);
      for (let q = 0; q < b; q++) {
        for (let k = 0; k < draws; k++) {
          for (let j = 0; j < d; j++) xi[j] = streams[q].normal();
          const base = (q * draws + k) * n;
          for (let i = 0; i < n; i++) {
            let dot = 0;
            for (let j = 0; j < d; j++) dot += xi[j] * y[i * d + j];
            xiDotY[base + i] = dot;
          }
        }
      }
    },
    evaluate(c, x, b) {
      if (b !== queries) throw new Error(`smoothed: ${b} queries after begin(${queries})`);
      const my = new Float64Array(b * d);
      const nearest2 = new Float64Array(b).fill(Infinity);
      const inv2s = 1 / (2 * c.sigma2);
      const shift = 2 * sigmaS * c.beta;
      for (let q = 0; q < b; q++) {
        for (let i = 0; i < n; i++) {
          let s = 0;
          for (let j = 0; j < d; j++) {
            const e = x[q * d + j] - c.beta * y[i * d + j];
            s += e * e;
          }
          dist[i] = s;
          if (s < nearest2[q]) nearest2[q] = s;
        }
        weights.fill(0);
        for (let k = 0; k < draws; k++) {
          const base = (q * draws + k) * n;
          let max = -Infinity;
          for (let i = 0; i < n; i++) {
            const logit = -(dist[i] - shift * xiDotY[base + i]) * inv2s;
            logits[k * n + i] = logit;
            if (logit > max) max = logit;
          }
          let sum = 0;
          for (let i = 0; i < n; i++) sum += logits[k * n + i] = Math.exp(logits[k * n + i] - max);
          const scale = 1 / (sum * draws);
          for (let i = 0; i < n; i++) weights[i] += logits[k * n + i] * scale;
        }
        for (let i = 0; i < n; i++) {
          const w = weights[i];
          if (w === 0) continue;
          for (let j = 0; j < d; j++) my[q * d + j] += w * y[i * d + j];
        }
      }
      return Promise.resolve({ my, ma: null, nearest2 });
    },
  };
}

export const smoothed = defineGenerator({
  name: "smoothed",
  summary: "the closed form with m averaged over x + sigma_s xi (fresh or per-trajectory draws)",
  provenance: "generated",
  params,
  create(p, context) {
    const { closed, transform } = smoothing(p, context.seed);
    const operator = closedFormOperator(closed, context, "smoothed", transform);
    const { sigmaS, draws, mode } = p;
    context.report({
      sigmaS,
      draws,
      mode,
      ...(mode === "fixed" ? { engine: "exact-cached" } : {}),
    });
    return operator;
  },
  denoiser(p, context) {
    const { closed, transform } = smoothing(p, context.seed);
    return closedFormDenoiser(closed, context, transform);
  },
});

/** The closed-form options underneath and the field transform that smooths m. */
function smoothing(p: Resolved<typeof params>, seed: number) {
  const { sigmaS, draws, mode, ...closed } = p;
  if (mode === "fixed" && closed.base === "empirical") {
    throw keyError("generate.params.mode", "fixed draws run the Gaussian-base field only");
  }
  const transform: FieldTransform = (field, points, ids) => {
    const streams = drawStreams(seed, ids);
    return mode === "fixed"
      ? fixedSmoothedField(points, sigmaS, draws, streams)
      : freshSmoothedField(field, sigmaS, draws, streams);
  };
  // Fixed draws bring their own cached field: the exact one underneath is never evaluated, so
  // it is the cheap float64 one (no onnxruntime session).
  return { closed: mode === "fixed" ? { ...closed, engine: "exact" as const } : closed, transform };
}
