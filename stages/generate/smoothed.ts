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
import { fixedSmoothedField, freshSmoothedField } from "./interpolant/smoothing.ts";

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
