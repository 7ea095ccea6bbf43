// SimCLR: a projection head on the encoder, NT-Xent over the 2B views (tau 0.5, the CIFAR value).

import type { Learner, LearnerOptions } from "./learner.ts";
import { methodTrainer, plainLearner } from "./learner.ts";
import { projectionHead } from "./blocks/model.ts";

export async function simclr(options: LearnerOptions, tau = 0.5): Promise<Learner> {
  const hidden = options.dim;
  const trainer = await methodTrainer(options, [...projectionHead(hidden, options.dim), {
    kind: "l2norm",
  }], {
    kind: "ntxent",
    tau,
  });
  return plainLearner("simclr", options, trainer);
}
