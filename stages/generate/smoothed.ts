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
import { exactField, holdOut } from "./interpolant/field.ts";
import type { Field, Points } from "./interpolant/field.ts";
import { interpolant } from "./interpolant/schedule.ts";
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
  calibrate: {
    type: "boolean",
    default: false,
    doc:
      "choose sigma_s per class from sigmaCandidates by the denoising error at t = 0.5 on a held-out share of the class, which the field then leaves out (sigmaS ignored)",
  },
  sigmaCandidates: {
    type: "string",
    default: "0.25,0.5,1,2",
    doc: "calibrate: the sigma_s values tried (comma list)",
  },
  holdout: {
    type: "number",
    above: 0,
    max: 0.9,
    default: 0.2,
    doc: "calibrate: share of each class held out",
  },
  calibrationImages: {
    type: "int",
    min: 1,
    default: 16,
    doc: "calibrate: held-out images scored per class",
  },
} as const;

/** The time at which a calibration scores the denoiser. */
const CALIBRATION_T = 0.5;

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
    const { closed, transform, chosen } = smoothing(p, context.seed);
    const operator = closedFormOperator(closed, context, "smoothed", transform);
    const { sigmaS, draws, mode } = p;
    context.report({
      draws,
      mode,
      ...(p.calibrate ? { sigmaChosen: chosen } : { sigmaS }),
      ...(mode === "fixed" ? { engine: "exact-cached" } : {}),
    });
    return operator;
  },
  denoiser(p, context) {
    const { closed, transform } = smoothing(p, context.seed);
    return closedFormDenoiser(closed, context, transform);
  },
});

/**
 * The closed-form options underneath, the field transform that smooths m, and the sigma_s chosen
 * per class when calibrating.
 */
function smoothing(p: Resolved<typeof params>, seed: number) {
  const { sigmaS, draws, mode, calibrate, sigmaCandidates, holdout, calibrationImages, ...closed } =
    p;
  if (mode === "fixed" && closed.base === "empirical") {
    throw keyError("generate.params.mode", "fixed draws run the Gaussian-base field only");
  }
  const candidates = sigmaCandidates.split(",").map((v) => Number(v.trim()));
  if (candidates.some((v) => !Number.isFinite(v) || v < 0) || !sigmaCandidates.trim()) {
    throw keyError(
      "generate.params.sigmaCandidates",
      `expected a comma list of numbers >= 0, got "${sigmaCandidates}"`,
    );
  }
  const smooth = (inner: Field, points: Points, sigma: number, streams: Rng[]) =>
    mode === "fixed"
      ? fixedSmoothedField(points, sigma, draws, streams)
      : freshSmoothedField(inner, sigma, draws, streams);
  const interp = interpolant({
    schedule: closed.schedule,
    gamma: closed.gamma,
    a: closed.a,
    sigmaMin: closed.sigmaMin,
  });
  const chosen: Record<string, number> = {};
  const fits = new Map<number, { rest: Points; sigma: number }>();

  /** sigma_s of one class: the candidate whose m~ (built on the rest) best denoises held-out images. */
  async function calibrateClass(points: Points, label: number) {
    const order = new Rng(seed, "smoothed-holdout", label).permutation(points.n);
    const split = holdOut(points, holdout, calibrationImages, order, "generate.params.holdout");
    const { rest, heldOut } = split;
    const c = interp.at(CALIBRATION_T);
    const noise = new Rng(seed, "smoothed-calibration", label);
    const x = Float64Array.from(
      heldOut.y,
      (v) => c.beta * v + Math.sqrt(c.sigma2) * noise.normal(),
    );
    let best = { sigma: candidates[0], error: Infinity };
    for (const sigma of candidates) {
      const streams = Array.from(
        { length: heldOut.n },
        (_, q) => new Rng(seed, "smoothed-calibration-xi", label, q),
      );
      const field = smooth(exactField(rest), rest, sigma, streams);
      field.begin?.(heldOut.n);
      const { my } = await field.evaluate(c, x, heldOut.n);
      let error = 0;
      for (let j = 0; j < my.length; j++) error += (my[j] - heldOut.y[j]) ** 2;
      if (error < best.error) best = { sigma, error };
    }
    chosen[String(label)] = best.sigma;
    return { rest, sigma: best.sigma };
  }

  const transform: FieldTransform = async (field, points, ids, label) => {
    const streams = drawStreams(seed, ids);
    if (!calibrate) return smooth(field, points, sigmaS, streams);
    let fit = fits.get(label);
    if (!fit) fits.set(label, fit = await calibrateClass(points, label));
    return smooth(exactField(fit.rest), fit.rest, fit.sigma, streams);
  };
  // Fixed draws and calibrated fields bring their own float64 fields: the one underneath is never
  // evaluated, so it is the cheap exact one (no onnxruntime session).
  const own = mode === "fixed" || calibrate;
  return { closed: own ? { ...closed, engine: "exact" as const } : closed, transform, chosen };
}
