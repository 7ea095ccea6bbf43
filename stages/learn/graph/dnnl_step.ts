// The training step with its convolutional encoder on oneDNN (core/dnnl.ts: the kernels PyTorch's
// CPU convolutions run) and the rest on onnxruntime, for the same StepSpec and the same values as
// the one-graph step (./train_step.ts): the encoder's forward and backward run block by block on
// NHWC typed arrays allocated once (conv; batch norm with the ReLU after it fused in; max-pool;
// residual blocks, their join and the ReLU after it one oneDNN add; the global average pool), the
// head, loss and head update run as the head's own compiled step (which also outputs the gradient
// at the features), and the encoder's update as a small graph of ./optimizers.ts. Encoders of
// other block kinds, gradient clipping (a global norm over both parts) and image sizes that
// pooling does not divide stay on the one-graph step (dnnlEncoderLength = 0).

import type { Dnnl, ImageShape } from "../../../core/dnnl.ts";
import { DnnlAdd, DnnlBatchNorm, DnnlConv, DnnlPool } from "../../../core/dnnl.ts";
import { createSession, GraphBuilder, ort } from "../../../core/onnx.ts";
import type { ActShape, Block, ParamSpec } from "../blocks/model.ts";
import { BN_EPS, BN_MOMENTUM, convPad, outputShape, paramSpecs, walk } from "../blocks/model.ts";
import { emitUpdate, extraInputs, stateNames } from "./optimizers.ts";
import { stepRows, trainStep } from "./train_step.ts";
import type { StepGraph, StepSpec } from "./train_step.ts";

/** Whether oneDNN runs these blocks: ReLU only after batch norm or a residual block. */
function covered(blocks: readonly Block[], input: ActShape): boolean {
  let shape = input;
  for (const [i, block] of blocks.entries()) {
    switch (block.kind) {
      case "conv":
        if (block.bias) return false;
        break;
      case "batchnorm":
        break;
      case "relu": {
        const before = blocks[i - 1]?.kind;
        if (before !== "batchnorm" && before !== "residual") return false;
        break;
      }
      case "maxpool":
        if (shape[1] % block.size || shape[2] % block.size) return false;
        break;
      case "residual":
        if (!covered(block.body, shape) || !covered(block.shortcut, shape)) return false;
        shape = walk(block.body, shape, () => {});
        continue;
      default:
        return false;
    }
    shape = outputShape(block, shape);
  }
  return true;
}

/**
 * How many leading blocks oneDNN runs (up to and including the global average pool); 0 where
 * the step must stay one graph.
 */
export function dnnlEncoderLength(spec: StepSpec): number {
  if (spec.input.length !== 3 || spec.clip > 0) return 0;
  const gap = spec.blocks.findIndex((b) => b.kind === "gap");
  if (gap < 0) return 0;
  const target = spec.loss.kind === "simsiam" ? spec.loss.target : gap + 1;
  const input: ActShape = [spec.input[2], spec.input[0], spec.input[1]];
  return target > gap && covered(spec.blocks.slice(0, gap), input) ? gap + 1 : 0;
}

type Values = Map<string, Float32Array>;

/** One piece of the encoder: reads its input buffer, writes its output; backward the reverse. */
interface Node {
  forward(value: (name: string) => Float32Array): void;
  backward(value: (name: string) => Float32Array, next: Values): void;
  release(): void;
}

interface Built {
  readonly nodes: Node[];
  readonly y: Float32Array;
  /** The gradient at y, which the caller fills before backward. */
  readonly dy: Float32Array;
  readonly shape: ActShape;
}

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** PyTorch's running statistic, as the one-graph step computes it in float32. */
function runningUpdate(old: Float32Array, batch: Float32Array, scale: number, out: Float32Array) {
  const f = Math.fround;
  const [keep, take, s] = [f(1 - BN_MOMENTUM), f(BN_MOMENTUM), f(scale)];
  for (let c = 0; c < old.length; c++) {
    const stat = scale === 1 ? batch[c] : f(batch[c] * s);
    out[c] = f(f(old[c] * keep) + f(stat * take));
  }
}

class Builder {
  /** Every batch norm's batch mean and variance, where a NaN or infinity anywhere shows. */
  readonly stats: Float32Array[] = [];

  constructor(
    readonly dnnl: Dnnl,
    readonly rows: number,
    readonly grads: Values,
  ) {}

  image(shape: ActShape): ImageShape {
    return { batch: this.rows, channels: shape[0], height: shape[1], width: shape[2] };
  }

  buffer(shape: ActShape): Float32Array {
    return new Float32Array(this.rows * size(shape));
  }

  /**
   * Nodes for `blocks` reading x; dx receives the input's gradient (null: not needed).
   * `dOut`, when given, is the buffer for the gradient at the output (shared by the two branches
   * of a residual block).
   */
  build(
    blocks: readonly Block[],
    prefix: string,
    x: Float32Array,
    dx: Float32Array | null,
    shape: ActShape,
    dOut?: Float32Array,
  ): Built {
    const nodes: Node[] = [];
    let [input, dInput, current] = [x, dx, shape];
    for (let i = 0; i < blocks.length; i++) {
      const block = blocks[i];
      const name = `${prefix}${i}`;
      const fusedRelu = blocks[i + 1]?.kind === "relu";
      const out = block.kind === "residual"
        ? walk(block.body, current, () => {})
        : outputShape(block, current);
      const last = i === blocks.length - 1 || (fusedRelu && i + 1 === blocks.length - 1);
      const y = this.buffer(out);
      const dy = last && dOut ? dOut : this.buffer(out);
      nodes.push(this.node(block, name, input, dInput, y, dy, current, fusedRelu));
      if (fusedRelu) i++;
      [input, dInput, current] = [y, dy, out];
    }
    return { nodes, y: input, dy: dInput!, shape: current };
  }

  node(
    block: Block,
    name: string,
    x: Float32Array,
    dx: Float32Array | null,
    y: Float32Array,
    dy: Float32Array,
    shape: ActShape,
    relu: boolean,
  ): Node {
    const image = this.image(shape);
    switch (block.kind) {
      case "conv": {
        const op = new DnnlConv(this.dnnl, {
          batch: this.rows,
          inChannels: shape[0],
          height: shape[1],
          width: shape[2],
          outChannels: block.out,
          kernel: block.kernel,
          stride: block.stride,
          pad: convPad(block),
        });
        const dw = this.grads.get(`${name}.weight`)!;
        return {
          forward: (value) => {
            op.setWeights(value(`${name}.weight`));
            op.forward(x, y);
          },
          backward: () => {
            if (dx) op.backwardData(dy, dx);
            op.backwardWeights(x, dy, dw);
          },
          release: () => op.release(),
        };
      }
      case "batchnorm": {
        const op = new DnnlBatchNorm(this.dnnl, image, BN_EPS, relu);
        const mean = new Float32Array(shape[0]);
        const variance = new Float32Array(shape[0]);
        this.stats.push(mean, variance);
        const count = this.rows * shape[1] * shape[2];
        const [dscale, dshift] = [
          this.grads.get(`${name}.scale`)!,
          this.grads.get(`${name}.shift`)!,
        ];
        return {
          forward: (value) =>
            op.forward(x, y, value(`${name}.scale`), value(`${name}.shift`), mean, variance),
          backward: (value, next) => {
            const [scale, shift] = [value(`${name}.scale`), value(`${name}.shift`)];
            op.backward(x, dy, scale, shift, mean, variance, dx!, dscale, dshift);
            runningUpdate(value(`${name}.mean`), mean, 1, next.get(`${name}.mean`)!);
            const unbias = count / Math.max(1, count - 1);
            runningUpdate(value(`${name}.var`), variance, unbias, next.get(`${name}.var`)!);
          },
          release: () => op.release(),
        };
      }
      case "maxpool":
      case "gap": {
        const max = block.kind === "maxpool";
        const op = new DnnlPool(this.dnnl, image, max ? "max" : "average", max ? block.size : 0);
        return {
          forward: () => op.forward(x, y),
          backward: () => op.backward(dy, dx!),
          release: () => op.release(),
        };
      }
      case "residual": {
        // Both branches write the gradient at their input into their own buffer; the gradient at
        // the (ReLU'd) sum is one buffer both read.
        const dsum = relu ? this.buffer(walk(block.body, shape, () => {})) : dy;
        const dBody = this.buffer(shape);
        const body = this.build(block.body, `${name}.body.`, x, dBody, shape, dsum);
        const identity = block.shortcut.length === 0;
        const dShort = identity ? dsum : this.buffer(shape);
        const short = identity
          ? { nodes: [], y: x }
          : this.build(block.shortcut, `${name}.shortcut.`, x, dShort, shape, dsum);
        const join = new DnnlAdd(this.dnnl, this.image(body.shape), relu);
        const gradSum = new DnnlAdd(this.dnnl, image, false);
        return {
          forward: (value) => {
            for (const n of body.nodes) n.forward(value);
            for (const n of short.nodes) n.forward(value);
            join.forward(body.y, short.y, y);
          },
          backward: (value, next) => {
            if (relu) join.backwardRelu(y, dy, dsum);
            for (let k = body.nodes.length - 1; k >= 0; k--) body.nodes[k].backward(value, next);
            for (let k = short.nodes.length - 1; k >= 0; k--) short.nodes[k].backward(value, next);
            if (dx) gradSum.forward(dBody, dShort, dx);
          },
          release: () => {
            for (const n of [...body.nodes, ...short.nodes]) n.release();
            join.release();
            gradSum.release();
          },
        };
      }
      default:
        throw new Error(`oneDNN engine: no ${block.kind} block`);
    }
  }
}

export class DnnlStep {
  readonly name: string;
  readonly #nodes: Node[];
  readonly #input: Float32Array;
  readonly #features: Built;
  readonly #paramGrads: Values;
  readonly #encoderParams: ParamSpec[];
  readonly #head: ort.InferenceSession;
  readonly #headGraph: StepGraph;
  readonly #update: ort.InferenceSession;
  readonly #scalars: string[];
  /** Head tensor name -> the full model's name. */
  readonly #rename: (name: string) => string;
  readonly #rows: number;
  readonly #stats: Float32Array[];

  private constructor(
    dnnl: Dnnl,
    spec: StepSpec,
    length: number,
    head: ort.InferenceSession,
    headGraph: StepGraph,
    update: ort.InferenceSession,
  ) {
    this.name = `oneDNN ${dnnl.version} encoder + onnxruntime head`;
    const rows = stepRows(spec);
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
    const builder = new Builder(dnnl, rows, this.#paramGrads);
    this.#input = builder.buffer(input);
    this.#features = builder.build(spec.blocks.slice(0, length), "", this.#input, null, input);
    this.#nodes = this.#features.nodes;
    this.#stats = builder.stats;
  }

  /** False when the forward pass met a NaN or infinity: oneDNN's fused ReLU maps NaN to 0, so
   * the loss alone would not show it (the one-graph step's loss is NaN then). */
  #finite(): boolean {
    return this.#stats.every((v) => v.every(Number.isFinite));
  }

  static async create(dnnl: Dnnl, spec: StepSpec, threads?: number): Promise<DnnlStep> {
    const length = dnnlEncoderLength(spec);
    const input: ActShape = [spec.input[2], spec.input[0], spec.input[1]];
    const encoder = spec.blocks.slice(0, length);
    const features = walk(encoder, input, () => {});
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
    this.#input.set(x);
    const value = (name: string) => current.get(name)!;
    for (const n of this.#nodes) n.forward(value);
    const { y: features, dy: dFeatures } = this.#features;
    const featureShape = [this.#rows, features.length / this.#rows];
    const headFeeds: Record<string, ort.Tensor> = {
      x: new ort.Tensor("float32", features, featureShape),
    };
    const headFetches: Record<string, ort.Tensor | null> = {
      loss: null,
      y: null,
      dx: new ort.Tensor("float32", dFeatures, featureShape),
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
    for (let k = this.#nodes.length - 1; k >= 0; k--) this.#nodes[k].backward(value, next);

    const updateFeeds: Record<string, ort.Tensor> = { ...scalarFeeds };
    const updateFetches: Record<string, ort.Tensor> = {};
    for (const p of this.#encoderParams.filter((p) => p.trainable)) {
      const shape = [...p.shape];
      const tensor = (v: Float32Array) => new ort.Tensor("float32", v, shape);
      updateFeeds[p.name] = tensor(value(p.name));
      updateFeeds[`grad.${p.name}`] = tensor(this.#paramGrads.get(p.name)!);
      updateFetches[`${p.name}:out`] = tensor(next.get(p.name)!);
      for (const s of stateNames(this.#headGraph.spec.optimizer, p.name)) {
        updateFeeds[s] = tensor(value(s));
        updateFetches[`${s}:out`] = tensor(next.get(s)!);
      }
    }
    await this.#update.run(updateFeeds, updateFetches);
    const loss = this.#finite() ? (out.loss.data as Float32Array)[0] : NaN;
    return { loss, y: out.y.data as Float32Array };
  }

  async release(): Promise<void> {
    for (const n of this.#nodes) n.release();
    await this.#head.release();
    await this.#update.release();
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
