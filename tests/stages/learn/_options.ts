// The learner options the learner tests share: the small CNN on 28x28x1 views, SGD momentum 0.9.

import { smallCnn } from "../../../stages/learn/blocks/model.ts";
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
