// What the four contrastive methods share: an encoder trained by one compiled step graph, fed
// batches of 2B views (view 1 of image i at row i, view 2 at row B + i), reporting its loss and
// collapse indicators, and handing out a frozen copy of the encoder's parameters for the probes.
// Each method (simclr.ts, moco.ts, simsiam.ts, swav.ts) adds its head, its loss and what it does
// around a step (MoCo's key encoder and queue, SwAV's Sinkhorn codes and prototype projection).

import { createSession, ort } from "../../core/onnx.ts";
import type { Block } from "./blocks/model.ts";
import { paramSpecs } from "./blocks/model.ts";
import { forwardModel } from "./graph/forward.ts";
import type { Optimizer } from "./graph/optimizers.ts";
import type { LossSpec } from "./graph/train_step.ts";
import { trainStep } from "./graph/train_step.ts";
import { Trainer } from "./graph/trainer.ts";
import { adamCorrections } from "./graph/schedules.ts";

export interface LearnerOptions {
  readonly encoder: readonly Block[];
  /** One image, [H, W, C]. */
  readonly input: readonly [number, number, number];
  /** Images per step (2 x batch views). */
  readonly batch: number;
  readonly optimizer: Optimizer;
  readonly seed: number;
  /** Width of the projection head's output. */
  readonly dim: number;
}

export interface StepReport {
  readonly loss: number;
  /** Mean over dimensions of the per-dimension std of the L2-normalised outputs: collapse sends it
   * to 0; for a non-collapsed d-dimensional embedding it is about 1/sqrt(d). */
  readonly featureStd: number;
  /** SwAV: mean entropy of the codes (nats); collapse sends it to 0. */
  readonly codeEntropy?: number;
}

export interface Learner {
  readonly name: string;
  readonly options: LearnerOptions;
  step(views: Float32Array, lr: number): Promise<StepReport>;
  /** A copy of the encoder's parameters and running statistics, for frozen probes. */
  encoderParams(): Map<string, Float32Array>;
  /** The trainer under the method (checkpoints, raw tensors). */
  readonly trainer: Trainer;
  release(): Promise<void>;
}

/** Per-dimension std of row-normalised outputs, averaged over dimensions. */
export function featureStd(y: Float32Array, rows: number): number {
  const dim = y.length / rows;
  const normed = new Float64Array(y.length);
  for (let r = 0; r < rows; r++) {
    let n = 0;
    for (let j = 0; j < dim; j++) n += y[r * dim + j] ** 2;
    const inv = 1 / Math.max(Math.sqrt(n), 1e-12);
    for (let j = 0; j < dim; j++) normed[r * dim + j] = y[r * dim + j] * inv;
  }
  let total = 0;
  for (let j = 0; j < dim; j++) {
    let mean = 0;
    for (let r = 0; r < rows; r++) mean += normed[r * dim + j];
    mean /= rows;
    let v = 0;
    for (let r = 0; r < rows; r++) v += (normed[r * dim + j] - mean) ** 2;
    total += Math.sqrt(v / rows);
  }
  return total / dim;
}

/** The compiled step for encoder + head with a method's loss. */
export async function methodTrainer(
  options: LearnerOptions,
  head: readonly Block[],
  loss: LossSpec,
): Promise<Trainer> {
  const [h, w, c] = options.input;
  const graph = trainStep({
    blocks: [...options.encoder, ...head],
    input: options.input,
    batch: options.batch,
    loss,
    optimizer: options.optimizer,
    clip: 0,
  });
  return await Trainer.create(graph, options.seed, [2 * options.batch, h, w, c]);
}

/** Copies of the encoder's tensors: encoder blocks come first, so their names are the encoder's own. */
export function encoderCopy(options: LearnerOptions, trainer: Trainer): Map<string, Float32Array> {
  const [h, w, c] = options.input;
  return new Map(
    paramSpecs(options.encoder, [c, h, w]).map((s) => [s.name, trainer.value(s.name).slice()]),
  );
}

/** A forward session over encoder + head (training-mode batch statistics) fed any parameter set. */
export async function forwardSession(options: LearnerOptions, head: readonly Block[]) {
  const { model, specs } = forwardModel([...options.encoder, ...head], options.input, {
    training: true,
    params: "inputs",
  });
  const session = await createSession(model);
  return {
    async run(
      x: Float32Array,
      rows: number,
      value: (name: string) => Float32Array,
    ): Promise<Float32Array> {
      const feeds: Record<string, ort.Tensor> = {
        x: new ort.Tensor("float32", x, [rows, ...options.input]),
      };
      for (const s of specs) feeds[s.name] = new ort.Tensor("float32", value(s.name), [...s.shape]);
      return (await session.run(feeds)).y.data as Float32Array;
    },
    specs,
    release: () => session.release(),
  };
}

/** A step's scalar inputs: the learning rate and, for Adam, the bias corrections of step t
 * (1-based), so every optimizer the graphs compile can drive a learner. */
export function stepScalars(optimizer: Optimizer, lr: number, t: number): Record<string, number> {
  return optimizer.kind === "adam"
    ? { lr, ...adamCorrections(t, optimizer.beta1, optimizer.beta2) }
    : { lr };
}

/**
 * The learner with release() waiting for a step still in flight: a consumer that unsubscribes
 * mid-step (Ctrl-C) may release at once without freeing sessions that native code is running.
 */
export function serialised<L extends Learner>(learner: L): L {
  let inflight: Promise<unknown> = Promise.resolve();
  return {
    ...learner,
    step(views: Float32Array, lr: number) {
      const report = learner.step(views, lr);
      inflight = report.catch(() => {});
      return report;
    },
    async release() {
      await inflight;
      await learner.release();
    },
  };
}

/** A learner whose step is the compiled step alone (SimCLR, SimSiam). */
export function plainLearner(name: string, options: LearnerOptions, trainer: Trainer): Learner {
  return serialised({
    name,
    options,
    trainer,
    async step(views, lr) {
      const loss = await trainer.step(views, stepScalars(options.optimizer, lr, trainer.steps + 1));
      return { loss, featureStd: featureStd(trainer.output, 2 * options.batch) };
    },
    encoderParams: () => encoderCopy(options, trainer),
    release: () => trainer.release(),
  });
}
