// SwAV: projection head, L2 normalisation, then K prototypes (a bias-free dense layer whose columns
// are kept unit-norm, projected after every step as the reference does). Each step computes the
// scores with the current weights, turns each view's scores into codes by Sinkhorn-Knopp (eps
// 0.05, 3 iterations), and trains on the swapped prediction (temperature 0.1). At small batch the
// recipes advise few prototypes (10 to 512).

import type { Block } from "./blocks/model.ts";
import { projectionHead } from "./blocks/model.ts";
import type { Learner, LearnerOptions } from "./learner.ts";
import {
  encoderCopy,
  featureStd,
  forwardSession,
  methodTrainer,
  serialised,
  stepScalars,
} from "./learner.ts";
import { sinkhorn } from "./sinkhorn.ts";

export interface SwavOptions {
  readonly prototypes: number;
  readonly temperature: number;
  readonly eps: number;
}

/** Mean entropy (nats) of code rows. */
export function codeEntropy(codes: Float32Array, rows: number): number {
  const k = codes.length / rows;
  let total = 0;
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < k; j++) {
      const q = codes[r * k + j];
      if (q > 0) total -= q * Math.log(q);
    }
  }
  return total / rows;
}

export async function swav(
  options: LearnerOptions,
  o: SwavOptions = { prototypes: 64, temperature: 0.1, eps: 0.05 },
): Promise<Learner> {
  const head: Block[] = [
    ...projectionHead(options.dim, options.dim),
    { kind: "l2norm" },
    { kind: "dense", out: o.prototypes, bias: false },
  ];
  const trainer = await methodTrainer(options, head, { kind: "swav", temperature: o.temperature });
  const scorer = await forwardSession(options, head);
  const prototypes = `${options.encoder.length + head.length - 1}.weight`;
  const b = options.batch;
  const k = o.prototypes;
  const normalise = () => {
    // Unit-norm prototypes: the weight is [dim, K], prototype j is column j.
    const w = trainer.value(prototypes);
    for (let j = 0; j < k; j++) {
      let n = 0;
      for (let i = 0; i < options.dim; i++) n += w[i * k + j] ** 2;
      const inv = 1 / Math.max(Math.sqrt(n), 1e-12);
      for (let i = 0; i < options.dim; i++) w[i * k + j] *= inv;
    }
  };
  normalise();
  let entropy = 0;
  return serialised({
    name: "swav",
    options,
    trainer,
    async step(views, lr) {
      const scores = await scorer.run(views, 2 * b, (name) => trainer.value(name));
      const codes = new Float32Array(2 * b * k);
      codes.set(sinkhorn(scores.subarray(0, b * k), b, k, o.eps), 0);
      codes.set(sinkhorn(scores.subarray(b * k), b, k, o.eps), b * k);
      const loss = await trainer.step(
        views,
        stepScalars(options.optimizer, lr, trainer.steps + 1),
        { codes },
      );
      normalise();
      entropy = codeEntropy(codes, 2 * b);
      return { loss, featureStd: featureStd(trainer.output, 2 * b), codeEntropy: entropy };
    },
    encoderParams: () => encoderCopy(options, trainer),
    async release() {
      await scorer.release();
      await trainer.release();
    },
  });
}
