// What the learner tests share: learner options for the small CNN on 28x28x1 views (SGD momentum
// 0.9), and a tiny conv + projection model on 8x8x1 inputs for trainer tests.

import type { Block } from "../../../stages/learn/blocks/model.ts";
import { projectionHead, smallCnn } from "../../../stages/learn/blocks/model.ts";
import type { LearnerOptions } from "../../../stages/learn/learner.ts";

export function cnnOptions(batch: number, dim: number, seed: number): LearnerOptions {
  return {
    encoder: smallCnn(),
    input: [28, 28, 1],
    batch,
    optimizer: { kind: "sgd", momentum: 0.9, weightDecay: 1e-5 },
    seed,
    dim,
  };
}

/** conv 6 + BN + ReLU + GAP + projection head (8 -> 4) + L2 norm, on [8, 8, 1] inputs. */
export const TINY: Block[] = [
  { kind: "conv", out: 6, kernel: 3, stride: 1, bias: false },
  { kind: "batchnorm" },
  { kind: "relu" },
  { kind: "gap" },
  ...projectionHead(8, 4),
  { kind: "l2norm" },
];
