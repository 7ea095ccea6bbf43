// The training runtime: one onnxruntime session per step graph, created once; parameters,
// optimizer state and running statistics live in typed arrays that are double-buffered (a step
// reads one set and writes the other through preallocated outputs, then they swap), so a step
// allocates nothing of the model's size.

import { createSession, ort } from "../../../core/onnx.ts";
import { initParams } from "../blocks/init.ts";
import type { StepGraph } from "./train_step.ts";

export class Trainer {
  readonly graph: StepGraph;
  readonly #session: ort.InferenceSession;
  readonly #shapes = new Map<string, readonly number[]>();
  #current = new Map<string, Float32Array>();
  #next = new Map<string, Float32Array>();
  readonly #inputShape: readonly number[];

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

  /** Replaces every tensor's value (checkpoint restore). */
  load(values: Map<string, Float32Array>): void {
    for (const [name, v] of this.#current) {
      const source = values.get(name);
      if (!source || source.length !== v.length) {
        throw new Error(`trainer: checkpoint lacks ${name} [${v.length}]`);
      }
      v.set(source);
    }
  }

  names(): string[] {
    return [...this.#current.keys()];
  }

  /** One step on views x ([2B, H, W, C]); scalars: lr (and Adam's bias corrections). Returns the loss. */
  async step(x: Float32Array, scalars: Record<string, number>): Promise<number> {
    const feeds: Record<string, ort.Tensor> = {
      x: new ort.Tensor("float32", x, [...this.#inputShape]),
    };
    const fetches: Record<string, ort.Tensor | null> = { loss: null };
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
    return (out.loss.data as Float32Array)[0];
  }

  release(): Promise<void> {
    return this.#session.release();
  }
}
