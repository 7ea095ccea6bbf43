// One training step as one ONNX graph: forward through the model, the loss (NT-Xent over 2B
// views for SimCLR; mean squared error against a "target" input for regression), the backward
// pass of every block, optional gradient clipping, and the optimizer update. Parameters, optimizer state and batch-norm running statistics are inputs; their new
// values are outputs named "<name>:out", so a step is a single session.run.

import { GraphBuilder } from "../../../core/onnx.ts";
import type { ActShape, Block, ParamSpec } from "../blocks/model.ts";
import { paramSpecs, walk } from "../blocks/model.ts";
import { emitBackward, emitTapedForward } from "./backward.ts";
import type { Tape } from "./backward.ts";
import {
  emitMoco,
  emitMse,
  emitNtXent,
  emitSimSiam,
  emitSoftmaxCrossEntropy,
  emitSwav,
} from "./losses.ts";
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
  readonly loss: LossSpec;
  readonly optimizer: Optimizer;
  /** Global gradient-norm clipping (0 = off). */
  readonly clip: number;
  /** Also output the gradient of the loss by the input x, as "dx" (for a step whose encoder runs
   * elsewhere, ./dnnl_step.ts). */
  readonly inputGradient?: boolean;
}

/**
 * The loss at the model's output. Contrastive losses take 2 x batch rows; their extra inputs
 * (computed outside the graph, so they get no gradient) are fed per step by name.
 */
export type LossSpec =
  | { readonly kind: "ntxent"; readonly tau: number }
  /** Regression: input "target" of the output's shape ([rows, out], or NHWC images). */
  | { readonly kind: "mse" }
  /** Classification: the output is logits; input "target" [rows, classes] (one-hot labels). */
  | { readonly kind: "xent" }
  /** MoCo v2: inputs "keys" [rows, out] (the key encoder's outputs) and "queue" [queue, out]. */
  | { readonly kind: "moco"; readonly tau: number; readonly queue: number }
  /** SimSiam: the output is the predictor's p; `target` is the index of the block whose output is
   * the projector's z (the stop-gradient target). */
  | { readonly kind: "simsiam"; readonly target: number }
  /** SwAV: the output is the prototype scores; input "codes" [rows, prototypes] (Sinkhorn-Knopp). */
  | { readonly kind: "swav"; readonly temperature: number };

export interface StepGraph {
  /** What the graph was compiled from (another engine may run the same step). */
  readonly spec: StepSpec;
  readonly model: Uint8Array;
  readonly params: ParamSpec[];
  /** Optimizer state tensors: name and shape. */
  readonly state: { name: string; shape: readonly number[] }[];
  /** Scalar inputs fed every step ("lr", and Adam's bias corrections). */
  readonly scalars: string[];
  /** The loss's tensor inputs fed every step (target, keys, queue, codes) and their shapes. */
  readonly inputs: { name: string; shape: readonly number[] }[];
}

/** Rows a step's input has: regressions and classifiers one per image, contrastive losses two. */
export function stepRows(spec: Pick<StepSpec, "loss" | "batch">): number {
  return spec.loss.kind === "mse" || spec.loss.kind === "xent" ? spec.batch : 2 * spec.batch;
}

export function trainStep(spec: StepSpec): StepGraph {
  const image = spec.input.length === 3;
  const shape: ActShape = image ? [spec.input[2], spec.input[0], spec.input[1]] : spec.input;
  const rows = stepRows(spec);
  const params = paramSpecs(spec.blocks, shape);
  const out = walk(spec.blocks, shape, () => {});
  // Image outputs (a velocity network's) leave in NHWC, as sia's batches, and need a regression.
  const imageOut = out.length === 3;
  if (out.length !== 1 && !(imageOut && spec.loss.kind === "mse")) {
    throw new Error(`trainStep: only an mse loss takes image outputs, the model ends in [${out}]`);
  }
  const outShape = imageOut ? [rows, out[1], out[2], out[0]] : [rows, out[0]];
  const g = new GraphBuilder("train_step");
  g.input("x", "float", [rows, ...spec.input]);
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
  const inputs: { name: string; shape: readonly number[] }[] = [];
  const input = (name: string, shape: readonly number[]) => {
    inputs.push({ name, shape });
    return g.input(name, "float", shape);
  };
  // A time-conditioned model (an embed block) takes t [rows] every step.
  const timed = spec.blocks.some((b) => b.kind === "embed");
  const tape: Tape = {
    batch: rows,
    training: true,
    entries: [],
    running: new Map(),
    time: timed ? input("t", [rows]) : undefined,
  };
  const yNchw = emitTapedForward(g, spec.blocks, nchw, shape, (name) => name, tape);
  const [y] = imageOut
    ? g.node("Transpose", [yNchw], { attributes: { perm: { ints: [0, 2, 3, 1] } } })
    : [yNchw];
  const dim = out[0];
  let loss: string;
  let dy: string;
  switch (spec.loss.kind) {
    case "ntxent":
      ({ loss, dz: dy } = emitNtXent(g, y, rows, spec.loss.tau));
      break;
    case "mse":
      ({ loss, dy } = emitMse(g, y, input("target", outShape), outShape.reduce((a, b) => a * b)));
      if (imageOut) {
        [dy] = g.node("Transpose", [dy], { attributes: { perm: { ints: [0, 3, 1, 2] } } });
      }
      break;
    case "xent":
      ({ loss, dlogits: dy } = emitSoftmaxCrossEntropy(g, y, input("target", [rows, dim]), rows));
      break;
    case "moco": {
      const keys = input("keys", [rows, dim]);
      const queue = input("queue", [spec.loss.queue, dim]);
      ({ loss, dq: dy } = emitMoco(g, y, keys, queue, rows, spec.loss.queue, dim, spec.loss.tau));
      break;
    }
    case "simsiam":
      ({ loss, dp: dy } = emitSimSiam(g, y, tape.entries[spec.loss.target].y, rows, dim));
      break;
    case "swav":
      ({ loss, dscores: dy } = emitSwav(
        g,
        y,
        input("codes", [rows, dim]),
        rows,
        dim,
        spec.loss.temperature,
      ));
      break;
  }
  g.node("Identity", [loss], { outputs: ["loss"] });
  g.output("loss", "float", []);
  // The model's output too, for collapse indicators (feature spread, code entropy).
  g.node("Identity", [y], { outputs: ["y"] });
  g.output("y", "float", outShape);
  const grads = new Map<string, string>();
  const dx = emitBackward(g, tape.entries, dy, rows, (name) => name, grads, !!spec.inputGradient);
  if (spec.inputGradient) {
    g.node(image ? "Transpose" : "Identity", [dx], {
      outputs: ["dx"],
      ...(image ? { attributes: { perm: { ints: [0, 2, 3, 1] } } } : {}),
    });
    g.output("dx", "float", [rows, ...spec.input]);
  }
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
  return { spec, model: g.build(), params, state, scalars, inputs };
}
