// What a flow network predicts, as the denoiser m = E[x1 | x_t = x] the samplers work from. The
// interpolant of a network has no latent noise (gamma = 0), so sigma = alpha and (math.md)
//   velocity b = beta' m + (alpha' / alpha)(x - beta m)  =>  m = (alpha b - alpha' x) / (alpha beta' - alpha' beta)
//   noise    e = E[x0 | x_t = x], x = alpha e + beta m   =>  m = (x - alpha e) / beta
//   score    s = (beta m - x) / alpha^2                   =>  m = (x + alpha^2 s) / beta
// The samplers rebuild b and s from m with field.ts's formulas, which invert these exactly, so
// every prediction drives the same ODE and SDE. alpha beta' - alpha' beta is positive for t < 1
// on every schedule; noise and score need beta(t) > 0, which t = 0 lacks on all but vp.

import type { Coefficients } from "./schedule.ts";

/** velocity b, denoiser E[x1 | x_t] (the data end), noise E[x0 | x_t] (the base end), score. */
export const PREDICTIONS = ["velocity", "denoiser", "noise", "score"] as const;
export type Prediction = (typeof PREDICTIONS)[number];

/** True when turning this prediction into m divides by beta(t). */
export function dividesByBeta(prediction: Prediction): boolean {
  return prediction === "noise" || prediction === "score";
}

/** m from the prediction `p` at the state x (both [B * d]), into out. */
export function denoiserFrom(
  prediction: Prediction,
  c: Coefficients,
  x: Float64Array,
  p: ArrayLike<number>,
  out: Float64Array,
): Float64Array {
  const { alpha, alphaDot, beta, betaDot } = c;
  switch (prediction) {
    case "denoiser":
      for (let j = 0; j < out.length; j++) out[j] = p[j];
      break;
    case "velocity": {
      const inv = 1 / (alpha * betaDot - alphaDot * beta);
      for (let j = 0; j < out.length; j++) out[j] = (alpha * p[j] - alphaDot * x[j]) * inv;
      break;
    }
    case "noise":
      for (let j = 0; j < out.length; j++) out[j] = (x[j] - alpha * p[j]) / beta;
      break;
    case "score": {
      const a2 = alpha * alpha;
      for (let j = 0; j < out.length; j++) out[j] = (x[j] + a2 * p[j]) / beta;
      break;
    }
  }
  return out;
}
