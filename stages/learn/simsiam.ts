// SimSiam: encoder, projector (ending in batch norm, as the CIFAR variant), predictor (a bottleneck
// MLP, hidden = dim / 4); L = 1/2 D(p1, sg(z2)) + 1/2 D(p2, sg(z1)). The stop-gradient is the
// absence of a backward edge from the loss into z: only the predictor's output gets a gradient.

import type { Block } from "./blocks/model.ts";
import { predictionHead } from "./blocks/model.ts";
import type { Learner, LearnerOptions } from "./learner.ts";
import { methodTrainer, plainLearner } from "./learner.ts";

export async function simsiam(options: LearnerOptions): Promise<Learner> {
  const projector: Block[] = [
    { kind: "dense", out: options.dim, bias: false },
    { kind: "batchnorm" },
    { kind: "relu" },
    { kind: "dense", out: options.dim, bias: false },
    { kind: "batchnorm" },
  ];
  const target = options.encoder.length + projector.length - 1;
  const trainer = await methodTrainer(options, [
    ...projector,
    ...predictionHead(Math.max(1, options.dim / 4), options.dim),
  ], {
    kind: "simsiam",
    target,
  });
  return plainLearner("simsiam", options, trainer);
}
