// MoCo v2: a query encoder trained through the compiled step, a key encoder that is the EMA of the
// query encoder (theta_k <- m theta_k + (1 - m) theta_q, updated before each step's keys, as the
// reference does), and a FIFO queue of past keys as negatives; the loss is symmetric over the two
// view orders. Keys are computed by a forward session with batch statistics (no shuffled BN: one
// process, one device).

import { Rng } from "../../core/rng.ts";
import { projectionHead } from "./blocks/model.ts";
import type { Block } from "./blocks/model.ts";
import { emaUpdate } from "./graph/schedules.ts";
import type { Learner, LearnerOptions } from "./learner.ts";
import {
  encoderCopy,
  featureStd,
  forwardSession,
  methodTrainer,
  serialised,
  stepScalars,
} from "./learner.ts";

export interface MocoOptions {
  readonly tau: number;
  /** Negatives kept (4096 at CIFAR scale; smaller for small data). */
  readonly queue: number;
  readonly momentum: number;
}

export async function moco(
  options: LearnerOptions,
  o: MocoOptions = { tau: 0.2, queue: 4096, momentum: 0.99 },
): Promise<Learner> {
  const head: Block[] = [...projectionHead(options.dim, options.dim), { kind: "l2norm" }];
  const trainer = await methodTrainer(options, head, { kind: "moco", tau: o.tau, queue: o.queue });
  const keyEncoder = await forwardSession(options, head);
  const keyParams = new Map(keyEncoder.specs.map((s) => [s.name, trainer.value(s.name).slice()]));
  // The queue starts as random unit vectors, as in the reference implementation.
  const rng = new Rng(options.seed, "moco-queue");
  const queue = new Float32Array(o.queue * options.dim);
  for (let r = 0; r < o.queue; r++) {
    let norm = 0;
    for (let j = 0; j < options.dim; j++) norm += (queue[r * options.dim + j] = rng.normal()) ** 2;
    for (let j = 0; j < options.dim; j++) queue[r * options.dim + j] /= Math.sqrt(norm);
  }
  let head_ = 0;
  const rows = 2 * options.batch;
  return serialised(
    {
      name: "moco",
      options,
      trainer,
      async step(views, lr) {
        if (trainer.steps > 0) {
          for (const [name, key] of keyParams) emaUpdate(key, trainer.value(name), o.momentum);
        }
        const keys = await keyEncoder.run(views, rows, (name) => keyParams.get(name)!);
        const loss = await trainer.step(
          views,
          stepScalars(options.optimizer, lr, trainer.steps + 1),
          { keys, queue },
        );
        for (let r = 0; r < rows; r++) {
          queue.set(keys.subarray(r * options.dim, (r + 1) * options.dim), head_ * options.dim);
          head_ = (head_ + 1) % o.queue;
        }
        return { loss, featureStd: featureStd(trainer.output, rows) };
      },
      encoderParams: () => encoderCopy(options, trainer),
      /** The key encoder's tensors (tests check it is exactly the EMA of the query encoder). */
      keyParams,
      async release() {
        await keyEncoder.release();
        await trainer.release();
      },
    } as Learner & { keyParams: Map<string, Float32Array> },
  );
}
