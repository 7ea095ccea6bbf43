// The tfjs oracle: the same description and parameters as a differentiable tfjs function, used to
// check the compiled ONNX graphs (forward values, and gradients through tf.grads). NHWC, as
// sia's batches; conv weights are stored [out, in, kh, kw] (ONNX) and transposed here.

import * as tf from "@tensorflow/tfjs";
import type { Block } from "./model.ts";
import { BN_EPS, convPad, fourierFrequencies, GN_EPS } from "./model.ts";

export type TfParams = Map<string, tf.Tensor>;

/** Batch-norm statistics a training-mode forward pass used, per batch-norm block (kept tensors). */
export interface BatchStats {
  readonly mean: tf.Tensor;
  readonly variance: tf.Tensor;
}

/** What blocks share across the walk: the time input and its embedding, and the skip stack. */
interface Context {
  readonly t?: tf.Tensor;
  embedding?: tf.Tensor;
  readonly skips: tf.Tensor[];
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
  context: Context = { skips: [] },
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
        const body = forward(block.body, params, y, training, stats, `${name}.body.`, context);
        const shortcut = forward(
          block.shortcut,
          params,
          y,
          training,
          stats,
          `${name}.shortcut.`,
          context,
        );
        y = tf.add(body, shortcut);
        break;
      }
      case "groupnorm": {
        const [n, h, w, c] = y.shape;
        const grouped = tf.reshape(y, [n, h, w, block.groups, c / block.groups]);
        const { mean, variance } = tf.moments(grouped, [1, 2, 4], true);
        const xhat = tf.reshape(
          tf.div(tf.sub(grouped, mean), tf.sqrt(tf.add(variance, GN_EPS))),
          [n, h, w, c],
        );
        y = tf.add(tf.mul(xhat, p("scale")), p("shift"));
        break;
      }
      case "silu":
        y = tf.mul(y, tf.sigmoid(y));
        break;
      case "upsample": {
        // Each pixel copied into a 2x2 block by concatenations: tf.image.resizeNearestNeighbor's
        // gradient in tfjs 4.22's cpu backend is wrong for batches above 1 (it sums every
        // sample into the first), and tile has no gradient at rank 6.
        const [n, h, w, c] = y.shape;
        const wide = tf.reshape(tf.concat([y, y], 3), [n, h, 2 * w, c]);
        y = tf.reshape(tf.concat([wide, wide], 2), [n, 2 * h, 2 * w, c]);
        break;
      }
      case "push":
        context.skips.push(y);
        break;
      case "concat":
        y = tf.concat([y, context.skips.pop()!], 3);
        break;
      case "embed": {
        if (!context.t) throw new Error("tfjs forward: an embed block needs the time input t");
        const angles = tf.mul(
          tf.reshape(context.t, [-1, 1]),
          tf.tensor(fourierFrequencies(block.features), [1, block.features / 2]),
        );
        const features = tf.concat([tf.sin(angles), tf.cos(angles)], 1);
        context.embedding = forward(block.body, params, features, training, stats, `${name}.body.`);
        break;
      }
      case "cond": {
        if (!context.embedding) throw new Error("tfjs forward: a cond block before any embed");
        const shift = tf.add(
          tf.matMul(context.embedding as tf.Tensor2D, p("weight") as tf.Tensor2D),
          p("bias"),
        );
        y = tf.add(y, tf.reshape(shift, [-1, 1, 1, shift.shape[1]!]));
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

/** A time-conditioned model (a velocity U-Net): x [N, H, W, C], t [N]. */
export function forwardTimed(
  blocks: readonly Block[],
  params: TfParams,
  x: tf.Tensor,
  t: tf.Tensor,
): tf.Tensor {
  return forward(blocks, params, x, true, undefined, "", { t, skips: [] });
}
