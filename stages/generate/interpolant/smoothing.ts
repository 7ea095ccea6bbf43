// The smoothed denoiser as fields (seed 002; Scarvelis et al. 2023): m~(t, x) = (1 / M) sum_k
// m(t, x + sigma_s xi_k), with fresh draws at every evaluation over any field, or draws fixed per
// trajectory over the exact Gaussian-base field with xi_k . y_i cached (see smoothed.ts, the
// stage, for the modes and the cost). Pure float64 math: no engine, no stage contract.

import type { Rng } from "../../../core/rng.ts";
import type { Field, FieldValue, Points } from "./field.ts";
import type { Coefficients } from "./schedule.ts";

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
