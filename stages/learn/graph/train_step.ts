// One training step as one ONNX graph: forward through the model, the loss (NT-Xent over 2B
// views for SimCLR; mean squared error against a "target" input for regression), the backward
// pass of every block, optional gradient clipping, and the optimizer update. Parameters, optimizer state and batch-norm running statistics are inputs; their new
// values are outputs named "<name>:out", so a step is a single session.run.

import { GraphBuilder } from "../../../core/onnx.ts";
import type { ActShape, Block, ParamSpec } from "../blocks/model.ts";
import { paramSpecs, walk } from "../blocks/model.ts";
import { emitBackward, emitTapedForward } from "./backward.ts";
import type { Tape } from "./backward.ts";
import { emitMse, emitNtXent } from "./losses.ts";
import { emitClip, emitUpdate, extraInputs, stateNames } from "./optimizers.ts";
import type { Optimizer } from "./optimizers.ts";

export interface StepSpec {
  /** Encoder then head, applied in sequence; the head should end with an l2norm block. */
  readonly blocks: readonly Block[];
  /** One image, [H, W, C]. */
  readonly input: ActShape;
  /**
   * Images per step. NT-Xent takes 2 x batch views, view 1 of image i at row i and view 2 at row
   * batch + i; MSE takes batch inputs and a target of the model's output shape.
   */
  readonly batch: number;
  readonly loss: { readonly kind: "ntxent"; readonly tau: number } | { readonly kind: "mse" };
  readonly optimizer: Optimizer;
  /** Global gradient-norm clipping (0 = off). */
  readonly clip: number;
}

export interface StepGraph {
  readonly model: Uint8Array;
  readonly params: ParamSpec[];
  /** Optimizer state tensors: name and shape. */
  readonly state: { name: string; shape: readonly number[] }[];
  /** Scalar inputs fed every step ("lr", and Adam's bias corrections). */
  readonly scalars: string[];
}

export function trainStep(spec: StepSpec): StepGraph {
  const image = spec.input.length === 3;
  const shape: ActShape = image ? [spec.input[2], spec.input[0], spec.input[1]] : spec.input;
  const rows = spec.loss.kind === "ntxent" ? 2 * spec.batch : spec.batch;
  const params = paramSpecs(spec.blocks, shape);
  const out = walk(spec.blocks, shape, () => {});
  if (out.length !== 1) {
    throw new Error(`trainStep: the model must end in vectors, ends in [${out}]`);
  }
  const g = new GraphBuilder("train_step");
  g.input("x", "float", [rows, ...spec.input]);
  if (spec.loss.kind === "mse") g.input("target", "float", [rows, out[0]]);
  for (const p of params) g.input(p.name, "float", p.shape);
  const trainable = params.filter((p) => p.trainable);
  const state = trainable.flatMap((p) =>
    stateNames(spec.optimizer, p.name).map((name) => ({ name, shape: p.shape }))
  );
  for (const s of state) g.input(s.name, "float", s.shape);
  const scalars = ["lr", ...extraInputs(spec.optimizer)];
  for (const s of scalars) g.input(s, "float", []);

  const [nchw] = image
    ? g.node("Transpose", ["x"], { attributes: { perm: { ints: [0, 3, 1, 2] } } })
    : ["x"];
  const tape: Tape = { batch: rows, training: true, entries: [], running: new Map() };
  const y = emitTapedForward(g, spec.blocks, nchw, shape, (name) => name, tape);
  const { loss, dy } = spec.loss.kind === "ntxent"
    ? (({ loss, dz }) => ({ loss, dy: dz }))(emitNtXent(g, y, rows, spec.loss.tau))
    : emitMse(g, y, "target", rows * out[0]);
  g.node("Identity", [loss], { outputs: ["loss"] });
  g.output("loss", "float", []);
  const grads = new Map<string, string>();
  emitBackward(g, tape.entries, dy, rows, (name) => name, grads);
  let gradList = trainable.map((p) => grads.get(p.name)!);
  if (spec.clip > 0) gradList = emitClip(g, gradList, spec.clip);
  trainable.forEach((p, i) => {
    const update = emitUpdate(g, spec.optimizer, p, gradList[i]);
    g.node("Identity", [update.param], { outputs: [`${p.name}:out`] });
    g.output(`${p.name}:out`, "float", p.shape);
    stateNames(spec.optimizer, p.name).forEach((name, j) => {
      g.node("Identity", [update.state[j]], { outputs: [`${name}:out`] });
      g.output(`${name}:out`, "float", p.shape);
    });
  });
  for (const [name, value] of tape.running) {
    g.node("Identity", [value], { outputs: [`${name}:out`] });
    g.output(`${name}:out`, "float", params.find((p) => p.name === name)!.shape);
  }
  return { model: g.build(), params, state, scalars };
}
