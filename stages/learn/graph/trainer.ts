// The training runtime: one engine per step graph, created once; parameters, optimizer state and
// running statistics live in typed arrays that are double-buffered (a step reads one set and
// writes the other through preallocated outputs, then they swap), so a step allocates nothing of
// the model's size. The engine is the step graph in one onnxruntime session, or, for
// convolutional encoders where libdnnl.so.2 loads, the encoder on oneDNN and the rest on
// onnxruntime (./dnnl_step.ts); SIA_ENGINE=onnxruntime forces the first. Which one runs is said
// once per process on stderr.

import { openDnnl } from "../../../core/dnnl.ts";
import { createSession, ort } from "../../../core/onnx.ts";
import { initParams } from "../blocks/init.ts";
import type { ActShape, Block } from "../blocks/model.ts";
import type { Checkpoint } from "./checkpoint.ts";
import { saveCheckpoint } from "./checkpoint.ts";
import { dnnlEncoderLength, DnnlStep } from "./dnnl_step.ts";
import type { StepGraph } from "./train_step.ts";

type Values = Map<string, Float32Array>;

/** Runs one step: reads `current`, writes every tensor's new value into `next`. */
interface Engine {
  readonly name: string;
  run(
    x: Float32Array,
    current: Values,
    next: Values,
    scalars: Record<string, number>,
    extra: Record<string, Float32Array>,
  ): Promise<{ loss: number; y: Float32Array }>;
  release(): Promise<void>;
}

/** The whole step as one onnxruntime graph. */
class OnnxEngine implements Engine {
  readonly name = "onnxruntime";
  constructor(
    readonly graph: StepGraph,
    readonly session: ort.InferenceSession,
    readonly shapes: Map<string, readonly number[]>,
    readonly inputShape: readonly number[],
  ) {}

  /** The tensors over each double-buffered set of values, made once per set (a step swaps the
   * sets, so two entries): wrapping hundreds of arrays anew every step costs milliseconds. */
  readonly #bindings = new Map<
    Values,
    { feeds: Record<string, ort.Tensor>; fetches: Record<string, ort.Tensor> }
  >();

  #bind(current: Values, next: Values) {
    let binding = this.#bindings.get(current);
    if (!binding) {
      binding = { feeds: {}, fetches: {} };
      for (const [name, v] of current) {
        const shape = [...this.shapes.get(name)!];
        binding.feeds[name] = new ort.Tensor("float32", v, shape);
        binding.fetches[`${name}:out`] = new ort.Tensor("float32", next.get(name)!, shape);
      }
      this.#bindings.set(current, binding);
    }
    return binding;
  }

  async run(
    x: Float32Array,
    current: Values,
    next: Values,
    scalars: Record<string, number>,
    extra: Record<string, Float32Array>,
  ): Promise<{ loss: number; y: Float32Array }> {
    const binding = this.#bind(current, next);
    const feeds: Record<string, ort.Tensor> = {
      ...binding.feeds,
      x: new ort.Tensor("float32", x, [...this.inputShape]),
    };
    for (const { name, shape } of this.graph.inputs) {
      if (!extra[name]) throw new Error(`trainer: loss input ${name} missing`);
      feeds[name] = new ort.Tensor("float32", extra[name], [...shape]);
    }
    const fetches: Record<string, ort.Tensor | null> = { ...binding.fetches, loss: null, y: null };
    for (const s of this.graph.scalars) {
      if (!(s in scalars)) throw new Error(`trainer: scalar input ${s} missing`);
      feeds[s] = new ort.Tensor("float32", Float32Array.of(scalars[s]), []);
    }
    const out = await this.session.run(feeds, fetches);
    return { loss: (out.loss.data as Float32Array)[0], y: out.y.data as Float32Array };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

const announced = new Set<string>();

export class Trainer {
  readonly graph: StepGraph;
  readonly #engine: Engine;
  readonly #shapes = new Map<string, readonly number[]>();
  #current = new Map<string, Float32Array>();
  #next = new Map<string, Float32Array>();
  /** Steps taken, restored from checkpoints so a resumed run continues its schedule. */
  steps = 0;
  /** The model's output of the last step ([rows, out]), for collapse indicators. */
  output: Float32Array = new Float32Array(0);

  private constructor(
    graph: StepGraph,
    engine: (shapes: Map<string, readonly number[]>) => Engine,
    values: Map<string, Float32Array>,
  ) {
    this.graph = graph;
    for (const p of graph.params) this.#shapes.set(p.name, p.shape);
    for (const s of graph.state) this.#shapes.set(s.name, s.shape);
    this.#engine = engine(this.#shapes);
    for (const [name, v] of values) {
      this.#current.set(name, v);
      this.#next.set(name, new Float32Array(v.length));
    }
  }

  /** Seeded parameters, zero optimizer state. `inputShape` is the views tensor [2B, H, W, C]. */
  static async create(
    graph: StepGraph,
    seed: number,
    inputShape: readonly number[],
    threads?: number,
    /** "onnxruntime" keeps the one-graph step even where oneDNN could run the encoder. */
    engineChoice: "auto" | "onnxruntime" = "auto",
  ): Promise<Trainer> {
    const values = initParams(graph.params, seed);
    for (const s of graph.state) {
      values.set(
        s.name,
        new Float32Array(s.shape.reduce((a, b) => a * b, 1)),
      );
    }
    const dnnl = engineChoice === "auto" && dnnlEncoderLength(graph.spec) > 0
      ? openDnnl(threads)
      : null;
    let engine: (shapes: Map<string, readonly number[]>) => Engine;
    if (dnnl) {
      const step = await DnnlStep.create(dnnl, graph.spec, threads);
      engine = () => step;
    } else {
      const session = await createSession(graph.model, threads);
      engine = (shapes) => new OnnxEngine(graph, session, shapes, inputShape);
    }
    const trainer = new Trainer(graph, engine, values);
    const name = trainer.engine;
    if (!announced.has(name)) {
      announced.add(name);
      console.error(`training engine: ${name}`);
    }
    return trainer;
  }

  /** Which engine runs the steps ("onnxruntime", or "oneDNN 2.6.3 encoder + onnxruntime head"). */
  get engine(): string {
    return this.#engine.name;
  }

  /** The current value of a parameter or state tensor (a live view: copy it to keep it). */
  value(name: string): Float32Array {
    const v = this.#current.get(name);
    if (!v) throw new Error(`trainer: no tensor ${name}`);
    return v;
  }

  /** Continues from a checkpoint: every tensor's value and the step count. */
  restore(checkpoint: Checkpoint): void {
    for (const [name, v] of this.#current) {
      const source = checkpoint.values.get(name);
      if (!source || source.length !== v.length) {
        throw new Error(`trainer: checkpoint lacks ${name} [${v.length}]`);
      }
      v.set(source);
    }
    this.steps = checkpoint.header.step;
  }

  /** Saves every tensor and the step count atomically. */
  save(
    path: string,
    model: { blocks: readonly Block[]; input: ActShape },
    meta: Record<string, unknown> = {},
  ) {
    return saveCheckpoint(path, { step: this.steps, ...model, meta }, this.#current, this.#shapes);
  }

  names(): string[] {
    return [...this.#current.keys()];
  }

  /**
   * One step on x (the graph's input shape, e.g. [2B, H, W, C] views); scalars: lr (and Adam's
   * bias corrections); extra: the loss's tensor inputs by name (target, keys, queue, codes).
   * Returns the loss.
   */
  async step(
    x: Float32Array,
    scalars: Record<string, number>,
    extra: Record<string, Float32Array> = {},
  ): Promise<number> {
    const out = await this.#engine.run(x, this.#current, this.#next, scalars, extra);
    [this.#current, this.#next] = [this.#next, this.#current];
    this.steps++;
    this.output = out.y;
    return out.loss;
  }

  release(): Promise<void> {
    return this.#engine.release();
  }
}
