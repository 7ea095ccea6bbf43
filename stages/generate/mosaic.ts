// Patch mosaics (Kamb and Ganguli 2024, the local score machine): each pixel's denoiser is a
// softmax over training images of the distance between the query's patch around that pixel and
// the same patch of each (scaled) training image, and returns that image's pixel there:
//   m~_p(x) = sum_n softmax_n(-|x_Omega(p) - beta y_n,Omega(p)|^2 / (2 sigma^2)) y_n(p),
// with Omega(p) the P x P window around p (clipped at the border) and P = P(t). Velocity and score
// follow from m~ by the closed form's formulas. A sample is a locally consistent mosaic of
// training patches, not a copy: two training images (all black, all white) already give
// exponentially many. With P covering the image from every pixel (P >= 2 max(H, W) - 1) it is
// the exact closed form.
//
// Cost: per training image one residual map r_n(p) = sum_c (x_p - beta y_n,p)^2 and its
// summed-area table make every window's sum O(1), so a query costs O(N d) whatever P is.
// `shifts` R > 0 adds every training image translated by up to R pixels (zero fill) to the
// dictionary: the shift-equivariant form over a window of shifts, at (2R + 1)^2 the cost.
// P(t) is a linear schedule from patchStart (t = 0) to patchEnd (t = 1), or calibrated at each
// time the sampler asks for: the candidate with the lowest denoising error |m~(beta h + sigma z)
// - h|^2 over images h of a held-out share of the class, which the dictionary then leaves out.

import { Rng } from "../../core/rng.ts";
import { keyError } from "../../core/errors.ts";
import { defineGenerator } from "../../core/stage.ts";
import { CLOSED_FORM_PARAMS, closedFormDenoiser, closedFormOperator } from "./closed_form.ts";
import type { FieldTransform } from "./closed_form.ts";
import type { Resolved } from "../../core/schema.ts";
import type { GeneratorContext } from "../../core/stage.ts";
import { holdOut } from "./interpolant/field.ts";
import type { Field, Points } from "./interpolant/field.ts";

const params = {
  ...CLOSED_FORM_PARAMS,
  patch: {
    type: "enum",
    values: ["calibrate", "schedule"],
    default: "calibrate",
    doc: "P(t): calibrated by held-out denoising error, or linear from patchStart to patchEnd",
  },
  patchStart: { type: "int", min: 1, default: 15, doc: "schedule: patch size P at t = 0 (odd)" },
  patchEnd: { type: "int", min: 1, default: 3, doc: "schedule: patch size P at t = 1 (odd)" },
  holdout: {
    type: "number",
    above: 0,
    max: 0.9,
    default: 0.2,
    doc: "calibrate: share of each class held out to choose P(t) (left out of the dictionary)",
  },
  calibrationImages: {
    type: "int",
    min: 1,
    default: 8,
    doc: "calibrate: held-out images scored per time",
  },
  shifts: {
    type: "int",
    min: 0,
    default: 0,
    doc: "R: add training images shifted by up to R pixels (shift-equivariant window)",
  },
} as const;

/** Image geometry: height, width, channels. */
export interface Geometry {
  readonly h: number;
  readonly w: number;
  readonly c: number;
}

/** Odd patch sizes tried by calibration, up to the whole image from any pixel. */
export function patchCandidates(g: Geometry): number[] {
  const full = 2 * Math.max(g.h, g.w) - 1;
  return [
    ...new Set([1, 3, 5, 7, 9, 11, 13, 17, 21, 27, 35, 45, full].map((p) => Math.min(p, full))),
  ]
    .sort((a, b) => a - b);
}

/**
 * m~ at one query for each patch size in `sizes`: [sizes.length][d]. The dictionary is `points`
 * shifted by every (dy, dx) with |dy|, |dx| <= shifts.
 */
export function mosaicDenoise(
  points: Points,
  g: Geometry,
  shifts: number,
  x: Float64Array,
  offset: number,
  beta: number,
  sigma2: number,
  sizes: readonly number[],
): Float64Array[] {
  const { h, w, c } = g;
  const hw = h * w;
  const inv2s = 1 / (2 * sigma2);
  const residual = new Float64Array(hw);
  const table = new Float64Array((h + 1) * (w + 1));
  const stats = sizes.map(() => ({
    max: new Float64Array(hw).fill(-Infinity),
    sum: new Float64Array(hw),
    acc: new Float64Array(hw * c),
  }));
  const value = new Float64Array(hw * c);
  for (let n = 0; n < points.n; n++) {
    const base = n * hw * c;
    for (let dy = -shifts; dy <= shifts; dy++) {
      for (let dx = -shifts; dx <= shifts; dx++) {
        // The (shifted) training image and its residual map against the query.
        for (let i = 0; i < h; i++) {
          for (let j = 0; j < w; j++) {
            const si = i + dy, sj = j + dx;
            const inside = si >= 0 && si < h && sj >= 0 && sj < w;
            let r = 0;
            for (let ch = 0; ch < c; ch++) {
              const v = inside ? points.y[base + (si * w + sj) * c + ch] : 0;
              value[(i * w + j) * c + ch] = v;
              const e = x[offset + (i * w + j) * c + ch] - beta * v;
              r += e * e;
            }
            residual[i * w + j] = r;
          }
        }
        for (let i = 0; i < h; i++) {
          for (let j = 0; j < w; j++) {
            table[(i + 1) * (w + 1) + j + 1] = residual[i * w + j] + table[i * (w + 1) + j + 1] +
              table[(i + 1) * (w + 1) + j] - table[i * (w + 1) + j];
          }
        }
        sizes.forEach((size, s) => {
          const half = (size - 1) >> 1;
          const { max, sum, acc } = stats[s];
          for (let i = 0; i < h; i++) {
            const i0 = Math.max(0, i - half), i1 = Math.min(h, i + half + 1);
            for (let j = 0; j < w; j++) {
              const j0 = Math.max(0, j - half), j1 = Math.min(w, j + half + 1);
              const box = table[i1 * (w + 1) + j1] - table[i0 * (w + 1) + j1] -
                table[i1 * (w + 1) + j0] + table[i0 * (w + 1) + j0];
              const p = i * w + j;
              const logit = -box * inv2s;
              // Online softmax per pixel: rescale what is there when the max moves.
              if (logit > max[p]) {
                const keep = Math.exp(max[p] - logit);
                sum[p] *= keep;
                for (let ch = 0; ch < c; ch++) acc[p * c + ch] *= keep;
                max[p] = logit;
              }
              const weight = Math.exp(logit - max[p]);
              sum[p] += weight;
              for (let ch = 0; ch < c; ch++) acc[p * c + ch] += weight * value[p * c + ch];
            }
          }
        });
      }
    }
  }
  return stats.map(({ sum, acc }) => {
    const m = new Float64Array(hw * c);
    for (let p = 0; p < hw; p++) {
      for (let ch = 0; ch < c; ch++) m[p * c + ch] = acc[p * c + ch] / sum[p];
    }
    return m;
  });
}

/** The odd patch size of a linear schedule from `start` (t = 0) to `end` (t = 1). */
export function scheduledPatch(start: number, end: number, t: number): number {
  const p = Math.round(start + (end - start) * t);
  return p % 2 === 1 ? p : p + (end > start ? 1 : -1) || 1;
}

/** Options of one class's mosaic field. */
export interface MosaicOptions {
  readonly geometry: Geometry;
  readonly shifts: number;
  /** P at a time t (the coefficients' beta and sigma^2 are those of t). */
  readonly patchAt: (t: number, beta: number, sigma2: number) => number;
}

/** The mosaic denoiser of `points` as a Gaussian-base Field. */
export function mosaicField(points: Points, o: MosaicOptions): Field {
  const d = points.d;
  return {
    d,
    bothEnds: false,
    evaluate(c, x, b) {
      const my = new Float64Array(b * d);
      const size = o.patchAt(c.t, c.beta, c.sigma2);
      for (let q = 0; q < b; q++) {
        const [m] = mosaicDenoise(points, o.geometry, o.shifts, x, q * d, c.beta, c.sigma2, [size]);
        my.set(m, q * d);
      }
      // Distances to whole training images are not what this field weighs.
      return Promise.resolve({ my, ma: null, nearest2: new Float64Array(b).fill(NaN) });
    },
  };
}

/**
 * Splits a class into dictionary and held-out images (seeded), and returns P(t) as the candidate
 * with the lowest mean |m~(beta h + sigma z) - h|^2 over `count` held-out h, cached per t.
 */
export function calibratedPatch(
  points: Points,
  geometry: Geometry,
  shifts: number,
  holdout: number,
  count: number,
  rng: Rng,
): { dictionary: Points; patchAt: MosaicOptions["patchAt"] } {
  const d = points.d;
  const split = holdOut(
    points,
    holdout,
    count,
    rng.permutation(points.n),
    "generate.params.holdout",
  );
  const { heldOut, rest: dictionary } = split;
  const sizes = patchCandidates(geometry);
  const chosen = new Map<number, number>();
  const seed = rng.u32();
  const patchAt = (t: number, beta: number, sigma2: number) => {
    const known = chosen.get(t);
    if (known !== undefined) return known;
    const noise = new Rng(seed, "mosaic-calibration", Math.round(t * 1e9));
    const error = new Float64Array(sizes.length);
    const x = new Float64Array(d);
    const sigma = Math.sqrt(sigma2);
    for (let k = 0; k < heldOut.n; k++) {
      for (let j = 0; j < d; j++) x[j] = beta * heldOut.y[k * d + j] + sigma * noise.normal();
      const ms = mosaicDenoise(dictionary, geometry, shifts, x, 0, beta, sigma2, sizes);
      ms.forEach((m, s) => {
        for (let j = 0; j < d; j++) error[s] += (m[j] - heldOut.y[k * d + j]) ** 2;
      });
    }
    let best = 0;
    for (let s = 1; s < sizes.length; s++) if (error[s] < error[best]) best = s;
    chosen.set(t, sizes[best]);
    return sizes[best];
  };
  return { dictionary, patchAt };
}

/** The closed-form options underneath, the transform to the mosaic field, and P(t) chosen so far. */
function mosaicFields(p: Resolved<typeof params>, { seed, train }: GeneratorContext) {
  const { patch, patchStart, patchEnd, holdout, calibrationImages, shifts, ...closed } = p;
  if (closed.base === "empirical") {
    throw keyError("generate.params.base", "mosaic runs the Gaussian-base field only");
  }
  if (patch === "schedule" && (patchStart % 2 === 0 || patchEnd % 2 === 0)) {
    throw keyError("generate.params.patchStart", "patch sizes are odd (a window centred on p)");
  }
  const [, h, w, c] = train.shape;
  const geometry = { h, w, c };
  // One field per class, kept across batches (calibration is per class and time).
  const fields = new Map<number, Field>();
  const calibrated: Record<string, Record<string, number>> = {};
  const transform: FieldTransform = (_exact, points, _ids, label) => {
    let field = fields.get(label);
    if (field) return field;
    if (patch === "schedule") {
      field = mosaicField(points, {
        geometry,
        shifts,
        patchAt: (t) => scheduledPatch(patchStart, patchEnd, t),
      });
    } else {
      const fit = calibratedPatch(
        points,
        geometry,
        shifts,
        holdout,
        calibrationImages,
        new Rng(seed, "mosaic-holdout", label),
      );
      const record: Record<string, number> = calibrated[String(label)] = {};
      field = mosaicField(fit.dictionary, {
        geometry,
        shifts,
        patchAt: (t, beta, sigma2) => (record[t.toFixed(4)] = fit.patchAt(t, beta, sigma2)),
      });
    }
    fields.set(label, field);
    return field;
  };
  // The exact field underneath is never evaluated: the cheap float64 one.
  return { closed: { ...closed, engine: "exact" as const }, transform, calibrated };
}

export const mosaic = defineGenerator({
  name: "mosaic",
  summary: "patch mosaics: each pixel's denoiser a softmax over co-located training patches",
  provenance: "generated",
  params,
  create(p, context) {
    const { closed, transform, calibrated } = mosaicFields(p, context);
    const operator = closedFormOperator(closed, context, "mosaic", transform);
    const facts = p.patch === "calibrate" ? { patchSizes: calibrated } : {};
    context.report({ patch: p.patch, shifts: p.shifts, ...facts });
    return operator;
  },
  denoiser(p, context) {
    const { closed, transform } = mosaicFields(p, context);
    return closedFormDenoiser(closed, context, transform);
  },
});
