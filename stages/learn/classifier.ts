// The supervised classifier of Tables 1 and 2: the small CNN with a dense head to class logits,
// trained by one compiled step graph with softmax cross-entropy (graph/losses.ts) on labelled
// batches, and scored by an eval-mode forward graph (batch norm from the running statistics) on
// held-out images. Every weight derives from the seed.

import { createSession, ort } from "../../core/onnx.ts";
import type { Block } from "./blocks/model.ts";
import { smallCnn } from "./blocks/model.ts";
import { forwardModel } from "./graph/forward.ts";
import type { Optimizer } from "./graph/optimizers.ts";
import { trainStep } from "./graph/train_step.ts";
import { Trainer } from "./graph/trainer.ts";
import { stepScalars } from "./learner.ts";

export interface ClassifierOptions {
  /** One image, [H, W, C]. */
  readonly input: readonly [number, number, number];
  readonly classes: number;
  /** Images per step. */
  readonly batch: number;
  readonly optimizer: Optimizer;
  readonly seed: number;
  /** Width of the hidden dense layer of the head. */
  readonly hidden: number;
  /** Channels of the three conv blocks (default 32, 64, 128: the small CNN). */
  readonly widths?: readonly [number, number, number];
}

export interface Classifier {
  readonly options: ClassifierOptions;
  readonly trainer: Trainer;
  /** One step on `batch` images with their labels (0 to classes - 1); returns the loss. */
  step(images: Float32Array, labels: Int32Array, lr: number): Promise<number>;
  /** The predicted class of each of n images (eval mode), in order. */
  predict(images: Float32Array, n: number): Promise<Int32Array>;
  release(): Promise<void>;
}

/** The small CNN (conv 32-64-128, BN, ReLU, pooling, global average) + dense, ReLU, dense. */
export function classifierBlocks(
  classes: number,
  hidden: number,
  widths?: readonly [number, number, number],
): Block[] {
  return [
    ...smallCnn(widths),
    { kind: "dense", out: hidden, bias: true },
    { kind: "relu" },
    { kind: "dense", out: classes, bias: true },
  ];
}

export async function classifier(options: ClassifierOptions): Promise<Classifier> {
  const { input, classes, batch } = options;
  const blocks = classifierBlocks(classes, options.hidden, options.widths);
  const graph = trainStep({
    blocks,
    input,
    batch,
    loss: { kind: "xent" },
    optimizer: options.optimizer,
    clip: 0,
  });
  const trainer = await Trainer.create(graph, options.seed, [batch, ...input]);
  const target = new Float32Array(batch * classes);
  return {
    options,
    trainer,
    step(images, labels, lr) {
      target.fill(0);
      labels.forEach((label, r) => {
        if (!(label >= 0 && label < classes)) {
          throw new Error(`classifier: label ${label} outside 0..${classes - 1}`);
        }
        target[r * classes + label] = 1;
      });
      return trainer.step(
        images,
        stepScalars(options.optimizer, lr, trainer.steps + 1),
        { target },
      );
    },
    async predict(images, n) {
      // The current weights, copied into the eval graph as constants.
      const params = new Map(graph.params.map((p) => [p.name, trainer.value(p.name).slice()]));
      const { model } = forwardModel(blocks, input, { training: false, params });
      const session = await createSession(model);
      const size = input[0] * input[1] * input[2];
      const predicted = new Int32Array(n);
      try {
        for (let start = 0; start < n; start += 256) {
          const rows = Math.min(256, n - start);
          const x = images.slice(start * size, (start + rows) * size);
          const y = (await session.run({ x: new ort.Tensor("float32", x, [rows, ...input]) })).y
            .data as Float32Array;
          for (let r = 0; r < rows; r++) {
            let best = 0;
            for (let k = 1; k < classes; k++) {
              if (y[r * classes + k] > y[r * classes + best]) best = k;
            }
            predicted[start + r] = best;
          }
        }
      } finally {
        await session.release();
      }
      return predicted;
    },
    release: () => trainer.release(),
  };
}
