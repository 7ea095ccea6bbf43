// The training step with its convolutional encoder on oneDNN (core/dnnl.ts: the kernels PyTorch's
// CPU convolutions run) and the rest on onnxruntime, for the same StepSpec and the same values as
// the one-graph step (./train_step.ts): the encoder's forward and backward run layer by layer on
// NHWC typed arrays (conv; batch norm with the ReLU after it fused in; max-pool; the global average
// pool), the head, loss and head update run as the head's own compiled step (which also outputs
// the gradient at the features), and the encoder's update as a small graph of ./optimizers.ts.
// Encoders of other block kinds, gradient clipping (a global norm over both parts) and image
// sizes that pooling does not divide stay on the one-graph step (dnnlEncoderLength = 0).

import type { Dnnl, ImageShape } from "../../../core/dnnl.ts";
import { DnnlBatchNorm, DnnlConv, DnnlPool } from "../../../core/dnnl.ts";
import { createSession, GraphBuilder, ort } from "../../../core/onnx.ts";
import type { ActShape, ParamSpec } from "../blocks/model.ts";
import { BN_EPS, BN_MOMENTUM, convPad, outputShape, paramSpecs } from "../blocks/model.ts";
import { emitUpdate, extraInputs, stateNames } from "./optimizers.ts";
import { trainStep } from "./train_step.ts";
import type { StepGraph, StepSpec } from "./train_step.ts";

/**
 * How many leading blocks oneDNN runs: conv (no bias), batch norm (ReLU after it fused),
 * max-pool, ending with the global average pool; 0 where the step must stay one graph.
 */
export function dnnlEncoderLength(spec: StepSpec): number {
  if (spec.input.length !== 3 || spec.clip > 0) return 0;
  let shape: ActShape = [spec.input[2], spec.input[0], spec.input[1]];
  for (const [i, block] of spec.blocks.entries()) {
    switch (block.kind) {
      case "conv":
        if (block.bias) return 0;
        break;
      case "batchnorm":
        break;
      case "relu":
        if (spec.blocks[i - 1]?.kind !== "batchnorm") return 0;
        break;
      case "maxpool":
        if (shape[1] % block.size || shape[2] % block.size) return 0;
        break;
      case "gap": {
        const target = spec.loss.kind === "simsiam" ? spec.loss.target : i + 1;
        return target > i ? i + 1 : 0;
      }
      default:
        return 0;
    }
    shape = outputShape(block, shape);
  }
  return 0;
}

type Layer =
  | { readonly kind: "conv"; readonly name: string; readonly op: DnnlConv }
  | {
    readonly kind: "batchnorm";
    readonly name: string;
    readonly op: DnnlBatchNorm;
    readonly mean: Float32Array;
    readonly variance: Float32Array;
    /** Values per channel (N H W), for the unbiased running variance. */
    readonly count: number;
  }
  | { readonly kind: "pool"; readonly op: DnnlPool };

type Values = Map<string, Float32Array>;

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

export class DnnlStep {
  readonly name: string;
  readonly #layers: Layer[];
  /** Activations: acts[0] is the step's input (set per step), acts[i + 1] layer i's output. */
  readonly #acts: Float32Array[];
  readonly #grads: Float32Array[];
  readonly #paramGrads: Values;
  readonly #encoderParams: ParamSpec[];
  readonly #head: ort.InferenceSession;
  readonly #headGraph: StepGraph;
  readonly #update: ort.InferenceSession;
  readonly #scalars: string[];
  /** Head tensor name -> the full model's name. */
  readonly #rename: (name: string) => string;
  readonly #rows: number;

  private constructor(
    dnnl: Dnnl,
    spec: StepSpec,
    length: number,
    head: ort.InferenceSession,
    headGraph: StepGraph,
    update: ort.InferenceSession,
  ) {
    this.name = `oneDNN ${dnnl.version} encoder + onnxruntime head`;
    const rows = spec.loss.kind === "mse" ? spec.batch : 2 * spec.batch;
    this.#rows = rows;
    this.#head = head;
    this.#headGraph = headGraph;
    this.#update = update;
    this.#scalars = ["lr", ...extraInputs(spec.optimizer)];
    this.#rename = (name) => name.replace(/^\d+/, (i) => `${Number(i) + length}`);
    const input: ActShape = [spec.input[2], spec.input[0], spec.input[1]];
    this.#encoderParams = paramSpecs(spec.blocks.slice(0, length), input);
    this.#paramGrads = new Map(
      this.#encoderParams.filter((p) => p.trainable).map((
        p,
      ) => [p.name, new Float32Array(size(p.shape))]),
    );
    this.#layers = [];
    this.#acts = [new Float32Array(0)];
    let shape = input;
    for (let i = 0; i < length; i++) {
      const block = spec.blocks[i];
      const image: ImageShape = {
        batch: rows,
        channels: shape[0],
        height: shape[1],
        width: shape[2],
      };
      const name = `${i}`;
      if (block.kind === "conv") {
        const op = new DnnlConv(dnnl, {
          batch: rows,
          inChannels: shape[0],
          height: shape[1],
          width: shape[2],
          outChannels: block.out,
          kernel: block.kernel,
          stride: block.stride,
          pad: convPad(block),
        });
        this.#layers.push({ kind: "conv", name, op });
      } else if (block.kind === "batchnorm") {
        const relu = spec.blocks[i + 1]?.kind === "relu";
        const op = new DnnlBatchNorm(dnnl, image, BN_EPS, relu);
        const c = shape[0];
        this.#layers.push({
          kind: "batchnorm",
          name,
          op,
          mean: new Float32Array(c),
          variance: new Float32Array(c),
          count: rows * shape[1] * shape[2],
        });
      } else if (block.kind === "relu") {
        continue; // fused into the batch norm before it
      } else {
        this.#layers.push({
          kind: "pool",
          op: new DnnlPool(
            dnnl,
            image,
            block.kind === "maxpool" ? "max" : "average",
            block.kind === "maxpool" ? block.size : 0,
          ),
        });
      }
      shape = outputShape(block, shape);
      this.#acts.push(new Float32Array(rows * size(shape)));
    }
    this.#grads = this.#acts.map((a, i) => new Float32Array(i === 0 ? 0 : a.length));
  }

  static async create(dnnl: Dnnl, spec: StepSpec, threads?: number): Promise<DnnlStep> {
    const length = dnnlEncoderLength(spec);
    const input: ActShape = [spec.input[2], spec.input[0], spec.input[1]];
    const encoder = spec.blocks.slice(0, length);
    let features = input;
    for (const block of encoder) features = outputShape(block, features);
    const headGraph = trainStep({
      ...spec,
      blocks: spec.blocks.slice(length),
      input: features,
      loss: spec.loss.kind === "simsiam"
        ? { ...spec.loss, target: spec.loss.target - length }
        : spec.loss,
      inputGradient: true,
    });
    const head = await createSession(headGraph.model, threads);
    const update = await createSession(updateGraph(spec, paramSpecs(encoder, input)), threads);
    return new DnnlStep(dnnl, spec, length, head, headGraph, update);
  }

  async run(
    x: Float32Array,
    current: Values,
    next: Values,
    scalars: Record<string, number>,
    extra: Record<string, Float32Array>,
  ): Promise<{ loss: number; y: Float32Array }> {
    const acts = this.#acts;
    acts[0] = x;
    const value = (name: string) => current.get(name)!;
    for (const [i, layer] of this.#layers.entries()) {
      if (layer.kind === "conv") {
        layer.op.setWeights(value(`${layer.name}.weight`));
        layer.op.forward(acts[i], acts[i + 1]);
      } else if (layer.kind === "batchnorm") {
        const n = layer.name;
        layer.op.forward(
          acts[i],
          acts[i + 1],
          value(`${n}.scale`),
          value(`${n}.shift`),
          layer.mean,
          layer.variance,
        );
      } else layer.op.forward(acts[i], acts[i + 1]);
    }
    const last = this.#layers.length;
    const headFeeds: Record<string, ort.Tensor> = {
      x: new ort.Tensor("float32", acts[last], [this.#rows, acts[last].length / this.#rows]),
    };
    const headFetches: Record<string, ort.Tensor | null> = {
      loss: null,
      y: null,
      dx: new ort.Tensor("float32", this.#grads[last], [
        this.#rows,
        acts[last].length / this.#rows,
      ]),
    };
    const g = this.#headGraph;
    for (const { name, shape } of [...g.params, ...g.state]) {
      const full = this.#rename(name);
      headFeeds[name] = new ort.Tensor("float32", value(full), [...shape]);
      headFetches[`${name}:out`] = new ort.Tensor("float32", next.get(full)!, [...shape]);
    }
    for (const { name, shape } of g.inputs) {
      if (!extra[name]) throw new Error(`trainer: loss input ${name} missing`);
      headFeeds[name] = new ort.Tensor("float32", extra[name], [...shape]);
    }
    const scalarFeeds: Record<string, ort.Tensor> = {};
    for (const s of this.#scalars) {
      if (!(s in scalars)) throw new Error(`trainer: scalar input ${s} missing`);
      scalarFeeds[s] = new ort.Tensor("float32", Float32Array.of(scalars[s]), []);
    }
    const out = await this.#head.run({ ...headFeeds, ...scalarFeeds }, headFetches);

    const grads = this.#grads;
    for (let i = last - 1; i >= 0; i--) {
      const layer = this.#layers[i];
      if (layer.kind === "conv") {
        if (i > 0) layer.op.backwardData(grads[i + 1], grads[i]);
        layer.op.backwardWeights(
          acts[i],
          grads[i + 1],
          this.#paramGrads.get(`${layer.name}.weight`)!,
        );
      } else if (layer.kind === "batchnorm") {
        const n = layer.name;
        layer.op.backward(
          acts[i],
          grads[i + 1],
          value(`${n}.scale`),
          value(`${n}.shift`),
          layer.mean,
          layer.variance,
          grads[i],
          this.#paramGrads.get(`${n}.scale`)!,
          this.#paramGrads.get(`${n}.shift`)!,
        );
        runningUpdate(value(`${n}.mean`), layer.mean, 1, next.get(`${n}.mean`)!);
        const unbias = layer.count / Math.max(1, layer.count - 1);
        runningUpdate(value(`${n}.var`), layer.variance, unbias, next.get(`${n}.var`)!);
      } else layer.op.backward(grads[i + 1], grads[i]);
    }

    const updateFeeds: Record<string, ort.Tensor> = { ...scalarFeeds };
    const updateFetches: Record<string, ort.Tensor> = {};
    for (const p of this.#encoderParams.filter((p) => p.trainable)) {
      const shape = [...p.shape];
      updateFeeds[p.name] = new ort.Tensor("float32", value(p.name), shape);
      updateFeeds[`grad.${p.name}`] = new ort.Tensor(
        "float32",
        this.#paramGrads.get(p.name)!,
        shape,
      );
      updateFetches[`${p.name}:out`] = new ort.Tensor("float32", next.get(p.name)!, shape);
      for (const s of stateNames(this.#headGraph.spec.optimizer, p.name)) {
        updateFeeds[s] = new ort.Tensor("float32", value(s), shape);
        updateFetches[`${s}:out`] = new ort.Tensor("float32", next.get(s)!, shape);
      }
    }
    await this.#update.run(updateFeeds, updateFetches);
    return { loss: (out.loss.data as Float32Array)[0], y: out.y.data as Float32Array };
  }

  async release(): Promise<void> {
    for (const layer of this.#layers) layer.op.release();
    await this.#head.release();
    await this.#update.release();
  }
}

/** PyTorch's running statistic, as the one-graph step computes it in float32. */
function runningUpdate(old: Float32Array, batch: Float32Array, scale: number, out: Float32Array) {
  const f = Math.fround;
  const [keep, take, s] = [f(1 - BN_MOMENTUM), f(BN_MOMENTUM), f(scale)];
  for (let c = 0; c < old.length; c++) {
    const stat = scale === 1 ? batch[c] : f(batch[c] * s);
    out[c] = f(f(old[c] * keep) + f(stat * take));
  }
}

/** The optimizer update of the encoder's parameters, their gradients fed as "grad.<name>". */
function updateGraph(spec: StepSpec, params: ParamSpec[]): Uint8Array {
  const g = new GraphBuilder("encoder_update");
  for (const s of ["lr", ...extraInputs(spec.optimizer)]) g.input(s, "float", []);
  for (const p of params.filter((p) => p.trainable)) {
    g.input(p.name, "float", p.shape);
    g.input(`grad.${p.name}`, "float", p.shape);
    const names = stateNames(spec.optimizer, p.name);
    for (const s of names) g.input(s, "float", p.shape);
    const update = emitUpdate(g, spec.optimizer, p, `grad.${p.name}`);
    g.node("Identity", [update.param], { outputs: [`${p.name}:out`] });
    g.output(`${p.name}:out`, "float", p.shape);
    names.forEach((s, j) => {
      g.node("Identity", [update.state[j]], { outputs: [`${s}:out`] });
      g.output(`${s}:out`, "float", p.shape);
    });
  }
  return g.build();
}
