// The tfjs oracle: the same description and parameters as a differentiable tfjs function, used to
// check the compiled ONNX graphs (forward values, and gradients through tf.grads). NHWC, as
// sia's batches; conv weights are stored [out, in, kh, kw] (ONNX) and transposed here.

import * as tf from "@tensorflow/tfjs";
import type { Block } from "./model.ts";
import { BN_EPS, convPad } from "./model.ts";

export type TfParams = Map<string, tf.Tensor>;

/** Batch-norm statistics a training-mode forward pass used, per batch-norm block (kept tensors). */
export interface BatchStats {
  readonly mean: tf.Tensor;
  readonly variance: tf.Tensor;
}

/**
 * Forward pass in training mode (batch statistics) or eval mode (running statistics).
 * x: [N, H, W, C] for image models, [N, F] for heads.
 */
export function forward(
  blocks: readonly Block[],
  params: TfParams,
  x: tf.Tensor,
  training: boolean,
  stats?: Map<string, BatchStats>,
  prefix = "",
): tf.Tensor {
  let y = x;
  blocks.forEach((block, i) => {
    const name = `${prefix}${i}`;
    const p = (suffix: string) => {
      const t = params.get(`${name}.${suffix}`);
      if (!t) throw new Error(`tfjs forward: no parameter ${name}.${suffix}`);
      return t;
    };
    switch (block.kind) {
      case "conv": {
        const w = tf.transpose(p("weight"), [2, 3, 1, 0]) as tf.Tensor4D;
        const pad = convPad(block);
        y = tf.conv2d(y as tf.Tensor4D, w, block.stride, pad);
        if (block.bias) y = tf.add(y, p("bias"));
        break;
      }
      case "batchnorm": {
        const axes = y.rank === 4 ? [0, 1, 2] : [0];
        let mean = p("mean");
        let variance = p("var");
        if (training) {
          const m = tf.moments(y, axes);
          mean = m.mean;
          variance = m.variance;
          // Kept past any enclosing tidy or gradient scope: the caller reads and disposes them.
          stats?.set(name, { mean: tf.keep(mean), variance: tf.keep(variance) });
        }
        y = tf.add(
          tf.mul(tf.div(tf.sub(y, mean), tf.sqrt(tf.add(variance, BN_EPS))), p("scale")),
          p("shift"),
        );
        break;
      }
      case "relu":
        y = tf.relu(y);
        break;
      case "maxpool":
        y = tf.maxPool(y as tf.Tensor4D, block.size, block.size, "valid");
        break;
      case "gap":
        y = tf.mean(y, [1, 2]);
        break;
      case "dense":
        y = tf.matMul(y as tf.Tensor2D, p("weight") as tf.Tensor2D);
        if (block.bias) y = tf.add(y, p("bias"));
        break;
      case "l2norm":
        y = tf.div(y, tf.maximum(tf.norm(y, 2, 1, true), 1e-12));
        break;
      case "residual": {
        const body = forward(block.body, params, y, training, stats, `${name}.body.`);
        const shortcut = forward(block.shortcut, params, y, training, stats, `${name}.shortcut.`);
        y = tf.add(body, shortcut);
        break;
      }
    }
  });
  return y;
}

/** tfjs tensors for a parameter map, in the description's shapes. */
export function tfParams(
  params: Map<string, Float32Array>,
  shapes: Map<string, readonly number[]>,
): TfParams {
  return new Map(
    [...params].map(([name, values]) => [name, tf.tensor(values, [...shapes.get(name)!])]),
  );
}
