// The closed-form stochastic interpolant of a finite training set as a generator stage: the exact
// optimal velocity and score (Prop. 1, 2; Prop. 3 for an empirical base), integrated by the ODE or
// SDE samplers, optionally with estimation error on purpose (Theorem 3). Thin over the math core
// in interpolant/. Each anchor batch gives one batch of samples of the anchors' classes
// (class-conditional, the default) or of the whole set.

import { concatMap, finalize } from "rxjs";
import type { OperatorFunction } from "rxjs";
import { Rng } from "../../core/rng.ts";
import { imageSize, makeBatch, sampleIds } from "../../core/batch.ts";
import type { Batch, Dataset } from "../../core/batch.ts";
import { keyError } from "../../core/errors.ts";
import { defineGenerator } from "../../core/stage.ts";
import type { DenoiserProbe, GeneratorContext } from "../../core/stage.ts";
import type { Resolved } from "../../core/schema.ts";
import { classGroups, groupByLabel } from "../load/dataset.ts";
import { bothEndsField } from "./interpolant/both_ends.ts";
import { ERROR_MODELS } from "./interpolant/error_models.ts";
import { exactField } from "./interpolant/field.ts";
import type { Field, Points } from "./interpolant/field.ts";
import { onnxField } from "./interpolant/onnx_field.ts";
import { prunedField } from "./interpolant/pruned.ts";
import { integrate } from "./interpolant/samplers.ts";
import { interpolant, LATENT_NOISES, SCHEDULES } from "./interpolant/schedule.ts";
import { SAMPLER_PARAMS, samplerChoice } from "./sampler_params.ts";

export const CLOSED_FORM_PARAMS = {
  schedule: { type: "enum", values: SCHEDULES, default: "linear", doc: "alpha, beta family" },
  gamma: { type: "enum", values: LATENT_NOISES, default: "none", doc: "latent noise gamma(t)" },
  a: { type: "number", above: 0, default: 1, doc: "a of the a-brownian gamma = sqrt(a t (1 - t))" },
  sigmaMin: { type: "number", above: 0, max: 1, default: 1e-3, doc: "alpha(1) of linear-smin" },
  ...SAMPLER_PARAMS,
  conditional: { type: "boolean", default: true, doc: "generate from the anchor's class only" },
  base: {
    type: "enum",
    values: ["gaussian", "empirical"],
    default: "gaussian",
    doc:
      "base: N(0, I), or a finite set of baseCount Gaussian points (both ends empirical, Prop. 3)",
  },
  baseCount: { type: "int", min: 1, default: 16, doc: "points of an empirical base" },
  delta: {
    type: "number",
    above: 0,
    max: 0.25,
    default: 1e-3,
    doc: "both-ends runs integrate over [delta, 1 - delta]",
  },
  error: {
    type: "enum",
    values: ERROR_MODELS,
    default: "none",
    doc: "estimation error added to b*",
  },
  errorC: { type: "number", min: 0, default: 1, doc: "C of the bounded and time-scaled errors" },
  errorP: {
    type: "number",
    min: 0,
    default: 0.5,
    doc: "p of the time-scaled error C (1 - t)^(-p)",
  },
  errorEps0: {
    type: "number",
    min: 0,
    default: 1e-3,
    doc: "eps0 of the density-inverse error (Eq. 10)",
  },
  engine: {
    type: "enum",
    values: ["auto", "exact", "onnx"],
    default: "auto",
    doc:
      "field engine: onnx (onnxruntime GEMMs + exact float64 winners), exact (float64 JS); auto = onnx for images (d >= 64), exact for toy data",
  },
  chunk: {
    type: "int",
    min: 1,
    default: 4096,
    doc: "training points per chunk of the online softmax",
  },
  block: {
    type: "int",
    min: 1,
    default: 64,
    doc:
      "onnx engine: query rows per onnxruntime call (same bytes for any batching; 256 suits large unconditional batches)",
  },
  prune: {
    type: "boolean",
    default: true,
    doc: "onnx engine: queries certified one-hot (dropped weight <= 1e-12) skip the O(N d) work",
  },
} as const;

function pointsOf(train: Dataset, positions: number[] | null): Points {
  const d = imageSize(train.shape);
  if (!positions) return { y: train.images, n: train.shape[0], d };
  const y = new Float32Array(positions.length * d);
  positions.forEach((p, j) => y.set(train.images.subarray(p * d, (p + 1) * d), j * d));
  return { y, n: positions.length, d };
}

/**
 * Turns a class's exact field into the one a set of trajectories integrates: generators that
 * replace the denoiser m with an estimate (smoothed.ts) do it here and keep everything else.
 * `points` are the class's training points (`label`, 0 when unconditional), `ids` the
 * trajectories' sample ids (random keys).
 */
export type FieldTransform = (
  field: Field,
  points: Points,
  ids: Int32Array,
  label: number,
) => Field | Promise<Field>;

/** The closed-form generator's operator, with its samples named `name` and m optionally replaced. */
export function closedFormOperator(
  p: Resolved<typeof CLOSED_FORM_PARAMS>,
  { seed, train, report }: GeneratorContext,
  name: string,
  transform?: FieldTransform,
): OperatorFunction<Batch, Batch> {
  const { method, eps0 } = samplerChoice(p);
  const bothEnds = p.base === "empirical";
  if (bothEnds && p.gamma === "none") {
    throw keyError(
      "generate.params.gamma",
      "a both-ends (base=empirical) run needs latent noise gamma > 0",
    );
  }
  const interp = interpolant({
    schedule: p.schedule,
    gamma: p.gamma,
    a: p.a,
    sigmaMin: p.sigmaMin,
  });
  const d = imageSize(train.shape);
  const engine = p.engine === "auto" ? (d >= 64 && !bothEnds ? "onnx" : "exact") : p.engine;
  if (engine === "onnx" && bothEnds) {
    throw keyError("generate.params.engine", "onnx runs the Gaussian-base field only");
  }
  const sampler = {
    method,
    steps: p.steps,
    tStart: bothEnds ? p.delta : 0,
    tEnd: bothEnds ? Math.min(p.tEnd, 1 - p.delta) : p.tEnd,
    epsForm: p.epsForm,
    eps0,
    lastStep: p.lastStep,
    error: { model: p.error, c: p.errorC, p: p.errorP, eps0: p.errorEps0, bothEnds },
  };
  const basePoints: Points | null = bothEnds
    ? (() => {
      const rng = new Rng(seed, "closed-form-base");
      return {
        y: Float32Array.from({ length: p.baseCount * d }, () => rng.normal()),
        n: p.baseCount,
        d,
      };
    })()
    : null;
  // One field per class (or one for everything), built on first use.
  const groups = p.conditional ? groupByLabel(train.labels) : null;
  const fields = new Map<number, Promise<Field>>();
  const fieldFor = (label: number): Promise<Field> => {
    const key = groups ? label : 0;
    let field = fields.get(key);
    if (!field) {
      const positions = groups ? groups.get(label) ?? null : null;
      if (groups && !positions) {
        throw new Error(`closed-form: no training images of class ${label}`);
      }
      const points = pointsOf(train, positions);
      field = basePoints
        ? Promise.resolve(bothEndsField(basePoints, points))
        : engine === "onnx"
        ? onnxField(points, { chunk: p.chunk, block: p.block }).then((
          f,
        ) => (p.prune ? prunedField(f, points) : f))
        : Promise.resolve(exactField(points, p.chunk));
      fields.set(key, field);
    }
    return field;
  };
  let produced = 0;
  let nfe = 0;
  report({ engine, method, steps: p.steps, nfePerSample: 0 });

  async function generate(anchors: Batch): Promise<Batch> {
    const n = anchors.shape[0];
    const images = new Float32Array(n * d);
    const ids = sampleIds(anchors, produced);
    produced += n;
    const byClass = classGroups(anchors.labels, p.conditional);
    for (const [label, members] of byClass) {
      const exact = await fieldFor(label);
      const field = transform
        ? await transform(
          exact,
          pointsOf(train, groups ? groups.get(label)! : null),
          Int32Array.from(members, (j) => ids[j]),
          groups ? label : 0,
        )
        : exact;
      const b = members.length;
      const x = new Float64Array(b * d);
      const noise: Rng[] = [];
      const directions = new Float64Array(b * d);
      members.forEach((j, q) => {
        const id = ids[j];
        const start = new Rng(seed, "closed-form-x0", id);
        if (basePoints) {
          // An exact draw from the mixture at t = delta: alpha a_k + beta y_i + gamma z.
          const c = interp.at(sampler.tStart);
          const k = start.int(basePoints.n);
          const points = pointsOf(train, groups ? groups.get(label)! : null);
          const i = start.int(points.n);
          for (let v = 0; v < d; v++) {
            x[q * d + v] = c.alpha * basePoints.y[k * d + v] + c.beta * points.y[i * d + v] +
              c.gamma * start.normal();
          }
        } else {
          for (let v = 0; v < d; v++) x[q * d + v] = start.normal();
        }
        noise.push(new Rng(seed, "closed-form-sde", id));
        const dir = new Rng(seed, "closed-form-error", id);
        let norm = 0;
        for (let v = 0; v < d; v++) norm += (directions[q * d + v] = dir.normal()) ** 2;
        const inv = 1 / Math.sqrt(norm);
        for (let v = 0; v < d; v++) directions[q * d + v] *= inv;
      });
      const result = await integrate(interp, field, x, b, sampler, noise, directions);
      nfe = result.nfe;
      members.forEach((j, q) => {
        for (let v = 0; v < d; v++) images[j * d + v] = result.x[q * d + v];
      });
    }
    report({ nfePerSample: nfe });
    return makeBatch({
      images,
      shape: anchors.shape,
      labels: p.conditional ? anchors.labels.slice() : new Int32Array(n).fill(-1),
      ids,
      provenance: "generated",
      generator: name,
    });
  }

  return (source) =>
    source.pipe(
      concatMap(generate),
      finalize(() => {
        for (const field of fields.values()) {
          field.then((f) => f.release?.()).catch(() => {});
        }
      }),
    );
}

/**
 * The closed form's denoiser (after `transform`, as its operator would integrate it) at any time,
 * on the exact float64 engine, for scoring: each query against its class's field.
 */
export function closedFormDenoiser(
  p: Resolved<typeof CLOSED_FORM_PARAMS>,
  { train }: GeneratorContext,
  transform?: FieldTransform,
): DenoiserProbe {
  const interp = interpolant({
    schedule: p.schedule,
    gamma: p.gamma,
    a: p.a,
    sigmaMin: p.sigmaMin,
  });
  const groups = p.conditional ? groupByLabel(train.labels) : null;
  const d = imageSize(train.shape);
  return {
    coefficients: (t) => interp.at(t),
    async denoise(t, x, labels) {
      const out = new Float64Array(x.length);
      const byClass = classGroups(labels, groups !== null);
      for (const [label, members] of byClass) {
        const positions = groups ? groups.get(label) : null;
        if (positions === undefined) throw new Error(`no training images of class ${label}`);
        const points = pointsOf(train, positions);
        const exact = exactField(points, p.chunk);
        const field = transform
          ? await transform(exact, points, Int32Array.from(members), groups ? label : 0)
          : exact;
        const b = members.length;
        const xs = new Float64Array(b * d);
        members.forEach((j, q) => xs.set(x.subarray(j * d, (j + 1) * d), q * d));
        field.begin?.(b);
        const { my } = await field.evaluate(interp.at(t), xs, b);
        members.forEach((j, q) => out.set(my.subarray(q * d, (q + 1) * d), j * d));
      }
      return out;
    },
  };
}

export const closedForm = defineGenerator({
  name: "closed-form",
  summary: "the optimal stochastic interpolant of the training set, ODE or SDE (Prop. 1 to 3)",
  provenance: "generated",
  params: CLOSED_FORM_PARAMS,
  create: (p, context) => closedFormOperator(p, context, "closed-form"),
  denoiser: (p, context) => closedFormDenoiser(p, context),
});
