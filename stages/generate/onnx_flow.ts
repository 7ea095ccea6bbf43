// A flow network from an .onnx file as a generator stage: sia's own exported flows and ones trained
// anywhere else, read through the model contract (flow.json, flow_contract.ts). The network is a
// Field the closed-form samplers already integrate: its prediction, whatever it is, becomes the
// denoiser m (interpolant/prediction.ts), from which the samplers rebuild the velocity and, for
// the SDE, the score. Sampling happens in the model's own data scale, from N(0, I) there; only
// the finished samples are mapped back to sia's [0, 1]. One onnxruntime session per stage, one
// call per anchor batch and time step.

import { concatMap, finalize } from "rxjs";
import { imageSize, makeBatch } from "../../core/batch.ts";
import type { Batch, Shape } from "../../core/batch.ts";
import { fileError, keyError } from "../../core/errors.ts";
import { createSession, ort } from "../../core/onnx.ts";
import { Rng } from "../../core/rng.ts";
import { defineGenerator } from "../../core/stage.ts";
import {
  checkSignature,
  CONTRACT_KEYS,
  modelSignature,
  overrideValue,
  parseContract,
} from "./flow_contract.ts";
import type { ContractKey, FlowContract, ModelCall } from "./flow_contract.ts";
import type { Field, FieldValue } from "./interpolant/field.ts";
import { denoiserFrom, dividesByBeta } from "./interpolant/prediction.ts";
import { integrate } from "./interpolant/samplers.ts";
import type { SamplerOptions } from "./interpolant/samplers.ts";
import { interpolant } from "./interpolant/schedule.ts";
import type { Coefficients } from "./interpolant/schedule.ts";
import { SAMPLER_PARAMS, samplerChoice } from "./sampler_params.ts";

const override = (doc: string) =>
  ({ type: "string", default: "", doc: `contract override: ${doc} (empty: flow.json's)` }) as const;

const params = {
  model: { type: "string", default: "", doc: "the flow's .onnx file (required)" },
  contract: {
    type: "string",
    default: "",
    doc: "its flow.json (default: MODEL.json, else flow.json, beside the model)",
  },
  inputs: override(`{"x": NAME, "t": NAME} (JSON; fields given replace the file's)`),
  output: override("the prediction's output name"),
  layout: override("nchw or nhwc"),
  prediction: override("velocity, denoiser, noise or score"),
  schedule: override("linear, linear-smin, trig or vp"),
  range: override("[lo, hi], the model's data scale (JSON)"),
  time: override(`{"dataAt": 1 or 0, "scale": S} (JSON; fields given replace the file's)`),
  shape: override("[C, H, W] (JSON)"),
  conditional: override("true: the model takes the label as inputs.y"),
  sigmaMin: { type: "number", above: 0, max: 1, default: 1e-3, doc: "alpha(1) of linear-smin" },
  ...SAMPLER_PARAMS,
  tStart: {
    type: "number",
    min: 0,
    max: 1,
    default: null,
    doc: "first time of the grid (default 0, or 1e-3 for a noise or score model whose beta(0) = 0)",
  },
} as const;

/** A model, its contract and how to call it, all checked before the run writes anything. */
export interface LoadedFlow {
  readonly contract: FlowContract;
  readonly call: ModelCall;
  readonly bytes: Uint8Array;
}

function readOrFail(path: string, what: string): Uint8Array {
  try {
    return Deno.readFileSync(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "no such file" : String(e);
    throw fileError(path, `cannot read ${what} (${why})`);
  }
}

function existsSync(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * Reads the model and its contract (`contractPath`, or MODEL.json, else flow.json beside it;
 * none at all when the overrides give every key) and checks them against each other and the
 * data's image shape. Synchronous, so a stage's create() finds every problem up front.
 */
export function loadFlow(
  model: string,
  contractPath: string,
  overrides: Partial<Record<ContractKey, unknown>>,
  data: Shape,
): LoadedFlow {
  const dir = model.includes("/") ? model.slice(0, model.lastIndexOf("/") + 1) : "";
  const candidates = contractPath
    ? [contractPath]
    : [model.replace(/\.onnx$/, "") + ".json", `${dir}flow.json`];
  const found = contractPath || candidates.find(existsSync);
  let file: unknown = null;
  if (found) {
    const text = new TextDecoder().decode(readOrFail(found, "the flow contract"));
    try {
      file = JSON.parse(text);
    } catch (e) {
      throw fileError(found, `not valid JSON (${e instanceof Error ? e.message : e})`);
    }
  }
  const contract = parseContract(file, found || model, overrides);
  const bytes = readOrFail(model, "the model");
  let signature;
  try {
    signature = modelSignature(bytes);
  } catch (e) {
    throw fileError(model, `not an ONNX model (${e instanceof Error ? e.message : e})`);
  }
  const [, h, w, c] = data;
  const [mc, mh, mw] = contract.shape;
  if (mc !== c || mh !== h || mw !== w) {
    throw fileError(
      model,
      `the contract's shape [${contract.shape.join(", ")}] does not fit the data's [C, H, W] = ` +
        `[${c}, ${h}, ${w}]`,
    );
  }
  return { contract, call: checkSignature(contract, signature, model), bytes };
}

export interface NetworkField extends Field {
  /** The raw prediction (a velocity with its sign in sia's time direction), NHWC. */
  predict(c: Coefficients, x: Float64Array, b: number): Promise<Float64Array>;
}

/**
 * The network as a Field over states in the model's data scale, in sia's NHWC order. `labels`
 * feeds a conditional model's label input (one per query).
 */
export function networkField(
  session: ort.InferenceSession,
  flow: LoadedFlow,
  model: string,
  labels: Int32Array | null,
): NetworkField {
  const { contract, call } = flow;
  const [channels, height, width] = contract.shape;
  const d = channels * height * width;
  const plane = height * width;
  const nchw = contract.layout === "nchw";
  // The velocity's sign follows the direction of the model's time; its scale only feeds the net.
  const sign = contract.prediction === "velocity" && contract.time.dataAt === 0 ? -1 : 1;
  const imageDims = nchw ? [channels, height, width] : [height, width, channels];

  async function run(c: Coefficients, x: Float64Array, start: number, rows: number, pad: number) {
    const xs = new Float32Array(pad * d);
    for (let q = 0; q < rows; q++) {
      const src = (start + q) * d;
      if (!nchw) {
        for (let v = 0; v < d; v++) xs[q * d + v] = x[src + v];
        continue;
      }
      for (let p = 0; p < plane; p++) {
        for (let ch = 0; ch < channels; ch++) {
          xs[q * d + ch * plane + p] = x[src + p * channels + ch];
        }
      }
    }
    const t = contract.time.scale * (contract.time.dataAt === 1 ? c.t : 1 - c.t);
    const tDims = call.tDims === "batch" ? [pad] : call.tDims === "one" ? [1] : [];
    const feeds: Record<string, ort.Tensor> = {
      [contract.inputs.x]: new ort.Tensor("float32", xs, [pad, ...imageDims]),
      [contract.inputs.t]: new ort.Tensor(
        "float32",
        new Float32Array(tDims.length ? tDims[0] : 1).fill(t),
        tDims,
      ),
    };
    if (contract.inputs.y !== undefined && labels) {
      const rowLabels = Array.from(
        { length: pad },
        (_, q) => labels[start + Math.min(q, rows - 1)],
      );
      feeds[contract.inputs.y] = call.labelType === "int64"
        ? new ort.Tensor("int64", BigInt64Array.from(rowLabels, BigInt), [pad])
        : call.labelType === "int32"
        ? new ort.Tensor("int32", Int32Array.from(rowLabels), [pad])
        : new ort.Tensor("float32", Float32Array.from(rowLabels), [pad]);
    }
    let out: ort.Tensor;
    try {
      out = (await session.run(feeds))[contract.output];
    } catch (e) {
      throw fileError(
        model,
        `onnxruntime failed to run it (${e instanceof Error ? e.message : e})`,
      );
    }
    if (out.data.length !== pad * d) {
      throw fileError(
        model,
        `output "${contract.output}" is [${out.dims.join(", ")}] for a batch of ${pad}; ` +
          `expected [${pad}, ${imageDims.join(", ")}]`,
      );
    }
    return out.data as Float32Array;
  }

  /** The model's output at sia's time c.t for the b states x, in sia's NHWC order. */
  async function predict(c: Coefficients, x: Float64Array, b: number): Promise<Float64Array> {
    const prediction = new Float64Array(b * d);
    const block = call.batch ?? b;
    for (let start = 0; start < b; start += block) {
      const rows = Math.min(block, b - start);
      const y = await run(c, x, start, rows, block);
      for (let q = 0; q < rows; q++) {
        const dst = (start + q) * d;
        for (let p = 0; p < plane; p++) {
          for (let ch = 0; ch < channels; ch++) {
            const v = p * channels + ch;
            prediction[dst + v] = sign * y[q * d + (nchw ? ch * plane + p : v)];
          }
        }
      }
    }
    return prediction;
  }

  return {
    d,
    bothEnds: false,
    predict,
    async evaluate(c, x, b): Promise<FieldValue> {
      const prediction = await predict(c, x, b);
      const my = denoiserFrom(contract.prediction, c, x, prediction, new Float64Array(b * d));
      // A network knows no training set: the distances to it are unknown.
      return { my, ma: null, nearest2: new Float64Array(b).fill(NaN) };
    },
  };
}

export const onnxFlow = defineGenerator({
  name: "onnx-flow",
  summary: "a flow network from an .onnx file and its flow.json contract, ODE or SDE",
  provenance: "generated",
  params,
  create(p, { seed, train, report }) {
    const { method, eps0 } = samplerChoice(p);
    if (!p.model) {
      throw keyError("generate.params.model", "required: the flow's .onnx file (--set model=PATH)");
    }
    const overrides: Partial<Record<ContractKey, unknown>> = {};
    for (const key of CONTRACT_KEYS) if (p[key] !== "") overrides[key] = overrideValue(p[key]);
    const flow = loadFlow(p.model, p.contract, overrides, train.shape);
    const { contract } = flow;
    const interp = interpolant({
      schedule: contract.schedule,
      gamma: "none",
      sigmaMin: p.sigmaMin,
    });
    const divides = dividesByBeta(contract.prediction);
    const tStart = p.tStart ?? (divides && interp.at(0).beta <= 0 ? 1e-3 : 0);
    if (divides && interp.at(tStart).beta <= 0) {
      throw keyError(
        "generate.params.tStart",
        `a ${contract.prediction} model gives the denoiser only through 1 / beta(t), and beta(` +
          `${tStart}) = 0 on ${contract.schedule}: set tStart > 0`,
      );
    }
    if (tStart >= p.tEnd) throw keyError("generate.params.tStart", `must be below tEnd ${p.tEnd}`);
    const sampler: SamplerOptions = {
      method,
      steps: p.steps,
      tStart,
      tEnd: p.tEnd,
      epsForm: p.epsForm,
      eps0,
      lastStep: p.lastStep,
      error: { model: "none" },
    };
    const d = imageSize(train.shape);
    const [lo, hi] = contract.range;
    let session: Promise<ort.InferenceSession> | null = null;
    let produced = 0;
    let nfe = 0;
    report({
      model: p.model,
      prediction: contract.prediction,
      schedule: contract.schedule,
      layout: contract.layout,
      method,
      steps: p.steps,
      tStart,
      nfePerSample: 0,
    });

    async function generate(anchors: Batch): Promise<Batch> {
      // The graph's declared signature was checked in create(); what onnxruntime alone can find
      // (an operator it lacks, a malformed node) surfaces here, still as one line naming the file.
      session ??= createSession(flow.bytes).catch((e) => {
        throw fileError(
          p.model,
          `onnxruntime cannot load it (${e instanceof Error ? e.message : e})`,
        );
      });
      const n = anchors.shape[0];
      const ids = Int32Array.from({ length: n }, (_, j) => produced + j);
      produced += n;
      // The closed-form stage's streams, so a model of the closed-form field reproduces its
      // samples draw for draw.
      const x = new Float64Array(n * d);
      const noise: Rng[] = [];
      ids.forEach((id, q) => {
        const start = new Rng(seed, "closed-form-x0", id);
        for (let v = 0; v < d; v++) x[q * d + v] = start.normal();
        noise.push(new Rng(seed, "closed-form-sde", id));
      });
      const field = networkField(
        await session,
        flow,
        p.model,
        contract.conditional ? anchors.labels : null,
      );
      const result = await integrate(interp, field, x, n, sampler, noise, new Float64Array(n * d));
      nfe = result.nfe;
      report({ nfePerSample: nfe });
      return makeBatch({
        images: Float32Array.from(result.x, (v) => (v - lo) / (hi - lo)),
        shape: anchors.shape,
        labels: contract.conditional ? anchors.labels.slice() : new Int32Array(n).fill(-1),
        ids,
        provenance: "generated",
        generator: "onnx-flow",
      });
    }

    return (source) =>
      source.pipe(
        concatMap(generate),
        finalize(() => {
          session?.then((s) => s.release()).catch(() => {});
        }),
      );
  },
});
