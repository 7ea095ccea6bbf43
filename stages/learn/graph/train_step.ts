// One SimCLR training step as one ONNX graph: forward through encoder and head for the 2B views,
// NT-Xent, the backward pass of every block, optional gradient clipping, and the optimizer
// update. Parameters, optimizer state and batch-norm running statistics are inputs; their new
// values are outputs named "<name>:out", so a step is a single session.run.

import { GraphBuilder } from "../../../core/onnx.ts";
import type { ActShape, Block, ParamSpec } from "../blocks/model.ts";
import { paramSpecs, walk } from "../blocks/model.ts";
import { emitBackward, emitTapedForward } from "./backward.ts";
import type { Tape } from "./backward.ts";
import { emitNtXent } from "./losses.ts";
import { emitClip, emitUpdate, extraInputs, stateNames } from "./optimizers.ts";
import type { Optimizer } from "./optimizers.ts";

export interface StepSpec {
  /** Encoder then head, applied in sequence; the head should end with an l2norm block. */
  readonly blocks: readonly Block[];
  /** One image, [H, W, C]. */
  readonly input: ActShape;
  /** Images per step; the graph takes 2 x batch views, view 1 of image i at row i, view 2 at B + i. */
  readonly batch: number;
  readonly tau: number;
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

export function simclrStep(spec: StepSpec): StepGraph {
  const [h, w, c] = spec.input;
  const rows = 2 * spec.batch;
  const shape: ActShape = [c, h, w];
  const params = paramSpecs(spec.blocks, shape);
  const out = walk(spec.blocks, shape, () => {});
  if (out.length !== 1) {
    throw new Error(`simclrStep: the model must end in vectors, ends in [${out}]`);
  }
  const g = new GraphBuilder("simclr_step");
  g.input("x", "float", [rows, h, w, c]);
  for (const p of params) g.input(p.name, "float", p.shape);
  const trainable = params.filter((p) => p.trainable);
  const state = trainable.flatMap((p) =>
    stateNames(spec.optimizer, p.name).map((name) => ({ name, shape: p.shape }))
  );
  for (const s of state) g.input(s.name, "float", s.shape);
  const scalars = ["lr", ...extraInputs(spec.optimizer)];
  for (const s of scalars) g.input(s, "float", []);

  const [nchw] = g.node("Transpose", ["x"], { attributes: { perm: { ints: [0, 3, 1, 2] } } });
  const tape: Tape = { batch: rows, entries: [], running: new Map() };
  const z = emitTapedForward(g, spec.blocks, nchw, shape, rows, (name) => name, tape);
  const { loss, dz } = emitNtXent(g, z, rows, spec.tau);
  g.node("Identity", [loss], { outputs: ["loss"] });
  g.output("loss", "float", []);
  const grads = new Map<string, string>();
  emitBackward(g, tape.entries, dz, rows, (name) => name, grads);
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
