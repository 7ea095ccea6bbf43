// Samplers on an explicit time grid (paper Eq. 4 and 5). ODE: dX = b dt. SDE: dX = [b + eps s] dt
// + sqrt(2 eps) dW, which keeps the marginals rho_t for any eps(t) >= 0. The number of field
// evaluations (NFE) is counted, not assumed. A step that ends where sigma = 0 (t = 1 for every
// schedule here) cannot evaluate the field there; it takes the frozen-denoiser step instead, which
// solves the ODE exactly for a frozen denoiser and never divides by sigma(t') = 0:
//   x' = mean(t') + (sigma(t') / sigma(t)) (x - mean(t)),  mean = alpha m_a + beta m_y.

import type { Rng } from "../../../core/rng.ts";
import { addError } from "./error_models.ts";
import type { ErrorModelOptions } from "./error_models.ts";
import { mixtureMean, score, spread, velocity } from "./field.ts";
import type { Field, FieldValue } from "./field.ts";
import type { Coefficients, Interpolant } from "./schedule.ts";

export const ODE_METHODS = ["euler", "heun", "rk4", "stable"] as const;
export const SDE_METHODS = ["em", "heun-sde"] as const;
export type OdeMethod = (typeof ODE_METHODS)[number];
export type SdeMethod = (typeof SDE_METHODS)[number];
export type Method = OdeMethod | SdeMethod;
export const EPS_FORMS = ["constant", "linear", "sigma", "decreasing", "sbdm"] as const;
export type EpsForm = (typeof EPS_FORMS)[number];
export const LAST_STEPS = ["none", "mean", "denoise"] as const;
export type LastStep = (typeof LAST_STEPS)[number];

export interface SamplerOptions {
  readonly method: Method;
  readonly steps: number;
  readonly tStart: number;
  readonly tEnd: number;
  /** SDE only: eps(t) = eps0 * form(t). */
  readonly epsForm: EpsForm;
  readonly eps0: number;
  /** What the last step returns: the step as is, its mean (no noise), or the denoiser m. */
  readonly lastStep: LastStep;
  readonly error: ErrorModelOptions;
}

export function isSde(method: Method): method is SdeMethod {
  return (SDE_METHODS as readonly string[]).includes(method);
}

/** eps(t) for the SDE samplers. */
export function epsAt(
  form: EpsForm,
  eps0: number,
  t: number,
  c: Coefficients,
  bothEnds: boolean,
): number {
  const { sigma2, sigmaSigmaDot } = spread(c, bothEnds);
  switch (form) {
    case "constant":
      return eps0;
    case "linear":
      return eps0 * (1 - t);
    case "sigma":
      // eps s* = eps0 (mean - x) stays bounded as sigma -> 0.
      return eps0 * sigma2;
    case "decreasing":
      return eps0 * (1 - t) * (1 - t);
    case "sbdm":
      // The diffusion model's own choice, sigma (sigma beta'/beta - sigma'); beta is floored at
      // 1e-3 so the pole at beta(0) = 0 stays finite.
      return eps0 * Math.max(0, sigma2 * c.betaDot / Math.max(c.beta, 1e-3) - sigmaSigmaDot);
  }
}

export function timeGrid(o: Pick<SamplerOptions, "steps" | "tStart" | "tEnd">): Float64Array {
  return Float64Array.from(
    { length: o.steps + 1 },
    (_, k) => o.tStart + ((o.tEnd - o.tStart) * k) / o.steps,
  );
}

export interface SampleResult {
  readonly x: Float64Array;
  readonly nfe: number;
}

/**
 * Integrates b queries from x (at tStart, modified in place) to tEnd. `noise[q]` draws the
 * Brownian increments of query q; `directions` holds each query's unit error direction.
 */
export async function integrate(
  interp: Interpolant,
  field: Field,
  x: Float64Array,
  b: number,
  o: SamplerOptions,
  noise: readonly Rng[],
  directions: Float64Array,
): Promise<SampleResult> {
  const d = field.d;
  const n = b * d;
  const grid = timeGrid(o);
  field.begin?.(b);
  const sde = isSde(o.method);
  let nfe = 0;
  const tmp = () => new Float64Array(n);
  const k1 = tmp(), k2 = tmp(), k3 = tmp(), k4 = tmp(), xs = tmp(), scratch = tmp();

  /** The drift at (t, y) into out; returns the field's value there. */
  async function drift(
    t: number,
    y: Float64Array,
    out: Float64Array,
    withEps: boolean,
  ): Promise<FieldValue> {
    const c = interp.at(t);
    const v = await field.evaluate(c, y, b);
    nfe++;
    velocity(c, field.bothEnds, y, v, out);
    addError(o.error, t, c, v, directions, out, b);
    if (withEps && o.eps0 > 0) {
      const eps = epsAt(o.epsForm, o.eps0, t, c, field.bothEnds);
      score(c, field.bothEnds, y, v, scratch);
      for (let j = 0; j < n; j++) out[j] += eps * scratch[j];
    }
    return v;
  }

  /** Frozen-denoiser step from (t, x) with the field value v at t. */
  function stableStep(t: number, t2: number, v: FieldValue) {
    const c = interp.at(t);
    const c2 = interp.at(t2);
    const ratio = Math.sqrt(spread(c2, field.bothEnds).sigma2 / spread(c, field.bothEnds).sigma2);
    mixtureMean(c, v, xs);
    mixtureMean(c2, v, k4);
    for (let j = 0; j < n; j++) x[j] = k4[j] + ratio * (x[j] - xs[j]);
  }

  // trig's alpha(1) = cos(pi / 2) is 6e-17, not 0: "zero" has to be a tolerance.
  const singular = (t: number) => spread(interp.at(t), field.bothEnds).sigma2 <= 1e-24;

  for (let k = 0; k < o.steps; k++) {
    const t = grid[k];
    const t2 = grid[k + 1];
    const h = t2 - t;
    const last = k === o.steps - 1;
    if (sde) {
      const v = await drift(t, x, k1, true);
      if (last && o.lastStep === "denoise") {
        x.set(v.my);
        break;
      }
      const eps = epsAt(o.epsForm, o.eps0, t, interp.at(t), field.bothEnds);
      const noiseScale = last && o.lastStep === "mean" ? 0 : Math.sqrt(2 * eps * h);
      for (let j = 0; j < n; j++) k3[j] = noiseScale * noise[Math.floor(j / d)].normal();
      if (o.method === "heun-sde" && !singular(t2)) {
        for (let j = 0; j < n; j++) xs[j] = x[j] + h * k1[j] + k3[j];
        await drift(t2, xs, k2, true);
        for (let j = 0; j < n; j++) x[j] += (h / 2) * (k1[j] + k2[j]) + k3[j];
      } else {
        for (let j = 0; j < n; j++) x[j] += h * k1[j] + k3[j];
      }
      continue;
    }
    const v = await drift(t, x, k1, false);
    if (last && o.lastStep === "denoise") {
      x.set(v.my);
      break;
    }
    if (o.method === "stable" || ((o.method === "heun" || o.method === "rk4") && singular(t2))) {
      if (o.error.model !== "none") {
        // The error is not part of the frozen solution: add it as an explicit term.
        velocity(interp.at(t), field.bothEnds, x, v, k2);
        for (let j = 0; j < n; j++) k3[j] = k1[j] - k2[j];
      } else k3.fill(0);
      stableStep(t, t2, v);
      for (let j = 0; j < n; j++) x[j] += h * k3[j];
    } else if (o.method === "euler") {
      for (let j = 0; j < n; j++) x[j] += h * k1[j];
    } else if (o.method === "heun") {
      for (let j = 0; j < n; j++) xs[j] = x[j] + h * k1[j];
      await drift(t2, xs, k2, false);
      for (let j = 0; j < n; j++) x[j] += (h / 2) * (k1[j] + k2[j]);
    } else {
      for (let j = 0; j < n; j++) xs[j] = x[j] + (h / 2) * k1[j];
      await drift(t + h / 2, xs, k2, false);
      for (let j = 0; j < n; j++) xs[j] = x[j] + (h / 2) * k2[j];
      await drift(t + h / 2, xs, k3, false);
      for (let j = 0; j < n; j++) xs[j] = x[j] + h * k3[j];
      await drift(t2, xs, k4, false);
      for (let j = 0; j < n; j++) x[j] += (h / 6) * (k1[j] + 2 * k2[j] + 2 * k3[j] + k4[j]);
    }
  }
  return { x, nfe };
}
