// The training runtime: one onnxruntime session per step graph, created once; parameters,
// optimizer state and running statistics live in typed arrays that are double-buffered (a step
// reads one set and writes the other through preallocated outputs, then they swap), so a step
// allocates nothing of the model's size.

import { createSession, ort } from "../../../core/onnx.ts";
import { initParams } from "../blocks/init.ts";
import type { ActShape, Block } from "../blocks/model.ts";
import type { Checkpoint } from "./checkpoint.ts";
import { saveCheckpoint } from "./checkpoint.ts";
import type { StepGraph } from "./train_step.ts";

export class Trainer {
  readonly graph: StepGraph;
  readonly #session: ort.InferenceSession;
  readonly #shapes = new Map<string, readonly number[]>();
  #current = new Map<string, Float32Array>();
  #next = new Map<string, Float32Array>();
  readonly #inputShape: readonly number[];
  /** Steps taken, restored from checkpoints so a resumed run continues its schedule. */
  steps = 0;
  /** The model's output of the last step ([rows, out]), for collapse indicators. */
  output: Float32Array = new Float32Array(0);

  private constructor(
    graph: StepGraph,
    session: ort.InferenceSession,
    values: Map<string, Float32Array>,
    inputShape: readonly number[],
  ) {
    this.graph = graph;
    this.#session = session;
    this.#inputShape = inputShape;
    for (const p of graph.params) this.#shapes.set(p.name, p.shape);
    for (const s of graph.state) this.#shapes.set(s.name, s.shape);
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
  ): Promise<Trainer> {
    const values = initParams(graph.params, seed);
    for (const s of graph.state) {
      values.set(
        s.name,
        new Float32Array(s.shape.reduce((a, b) => a * b, 1)),
      );
    }
    return new Trainer(graph, await createSession(graph.model, threads), values, inputShape);
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
    const feeds: Record<string, ort.Tensor> = {
      x: new ort.Tensor("float32", x, [...this.#inputShape]),
    };
    for (const { name, shape } of this.graph.inputs) {
      if (!extra[name]) throw new Error(`trainer: loss input ${name} missing`);
      feeds[name] = new ort.Tensor("float32", extra[name], [...shape]);
    }
    const fetches: Record<string, ort.Tensor | null> = { loss: null, y: null };
    for (const [name, v] of this.#current) {
      const shape = [...this.#shapes.get(name)!];
      feeds[name] = new ort.Tensor("float32", v, shape);
      fetches[`${name}:out`] = new ort.Tensor("float32", this.#next.get(name)!, shape);
    }
    for (const s of this.graph.scalars) {
      if (!(s in scalars)) throw new Error(`trainer: scalar input ${s} missing`);
      feeds[s] = new ort.Tensor("float32", Float32Array.of(scalars[s]), []);
    }
    const out = await this.#session.run(feeds, fetches);
    [this.#current, this.#next] = [this.#next, this.#current];
    this.steps++;
    this.output = out.y.data as Float32Array;
    return (out.loss.data as Float32Array)[0];
  }

  release(): Promise<void> {
    return this.#session.release();
  }
}
