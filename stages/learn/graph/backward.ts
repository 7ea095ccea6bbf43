// Reverse mode, written by hand per block, as ONNX nodes. The forward pass is emitted onto a tape
// that keeps what each backward needs (a conv's input, batch norm's x - mean and 1/std, max-pool
// indices), then the tape is walked backwards. Training graphs have a fixed batch size, so every
// shape here is static.
//
// Per block (NCHW; y = f(x), dy given):
//   conv      dx = ConvTranspose(dy, W), or Conv(dy, W^T flipped) where that measured faster;
//             dW = GEMMs of dy by the k^2 shifted (strided) copies of the padded input;
//             db = sum(dy)
//   batchnorm y = (x - mean) a + beta with a = gamma / std; saves x - mean, so
//             dx = a dy + b (x - mean) + c per channel, b = -a dgamma / (std M),
//             c = -a dbeta / M (M values per channel); dgamma = sum(dy (x - mean)) / std;
//             dbeta = sum(dy)
//   relu      dx = dy where y > 0
//   maxpool   dx = MaxUnpool(dy) at the argmax indices (ties: the first in the window, as tfjs)
//   gap       dx = dy / (H W) broadcast
//   dense     dx = dy W^T; dW = x^T dy; db = sum(dy)
//   l2norm    dx = (dy - y sum(y dy)) / |x|
//   residual  dx = body'(dy) + shortcut'(dy)
//   groupnorm batch norm's formula per (sample, group)
//   silu      dx = dy s (1 + x (1 - s)), s = sigmoid(x)
//   upsample  dx = dy summed over each 2x2 block
//   concat    dx, dskip = dy split along channels; dskip joins the gradient at the push
//   cond      dx = dy; g = sum_hw(dy); dW = e^T g; db = sum(g); de += g W^T
//   embed     the embedding's gradient (summed over every cond) through the embedding MLP

import type { GraphBuilder } from "../../../core/onnx.ts";
import type { ActShape, Block } from "../blocks/model.ts";
import {
  BN_EPS,
  BN_MOMENTUM,
  convPad,
  fourierFrequencies,
  GN_EPS,
  outputShape,
} from "../blocks/model.ts";

interface Entry {
  readonly block: Block;
  readonly name: string;
  /** Input shape without the batch axis. */
  readonly shape: ActShape;
  readonly x: string;
  readonly y: string;
  /** Saved forward values by role. */
  readonly saved: Record<string, string>;
  /** Residual blocks: the tapes of the two branches. */
  readonly body?: Entry[];
  readonly shortcut?: Entry[];
}

export interface Tape {
  /** Rows per step; null when the batch size is left dynamic (inference graphs). */
  readonly batch: number | null;
  /** Batch norm from batch statistics (and running-statistic updates when batch is known), or
   * from the running statistics (eval). */
  readonly training: boolean;
  readonly entries: Entry[];
  /** Updated batch-norm running statistics: parameter name -> graph value. */
  readonly running: Map<string, string>;
  /** The time input t ([N]) of a time-conditioned model (embed blocks read it). */
  readonly time?: string;
  /** Set by the embed block: the embedding the cond blocks read. */
  embedding?: string;
  /** Values kept by push blocks for their concat. */
  skips?: string[];
}

/** Gradient map key under which cond blocks sum the embedding's gradient. */
const embeddingGrad = (embedding: string) => `@${embedding}`;

function ints(values: readonly number[]) {
  return { ints: values };
}

function scalar(g: GraphBuilder, name: string, value: number): string {
  return g.constant(name, Float32Array.of(value), []);
}

function shapeConst(g: GraphBuilder, name: string, dims: readonly number[]): string {
  return g.constant(name, BigInt64Array.from(dims.map(BigInt)), [dims.length]);
}

/**
 * A per-sample, per-group value [N, groups, 1] repeated over each group's channels: [N, C, 1, 1]
 * for broadcasting over an image (`image`), else [N, C].
 */
function perChannel(
  g: GraphBuilder,
  name: string,
  tag: string,
  value: string,
  channels: number,
  groups: number,
  image: boolean,
): string {
  const [repeated] = g.node("Expand", [
    value,
    shapeConst(g, `${name}.${tag}.repeat`, [1, 1, channels / groups]),
  ]);
  const dims = image ? [0, channels, 1, 1] : [0, channels];
  return g.node("Reshape", [repeated, shapeConst(g, `${name}.${tag}.shape`, dims)])[0];
}

/** The forward pass onto a tape; returns the output value. */
export function emitTapedForward(
  g: GraphBuilder,
  blocks: readonly Block[],
  input: string,
  shape: ActShape,
  param: (name: string) => string,
  tape: Tape,
  entries: Entry[] = tape.entries,
  prefix = "",
): string {
  let x = input;
  let current = shape;
  blocks.forEach((block, i) => {
    const name = `${prefix}${i}`;
    const saved: Record<string, string> = {};
    let y: string;
    let body: Entry[] | undefined;
    let shortcut: Entry[] | undefined;
    switch (block.kind) {
      case "conv": {
        const pad = convPad(block);
        const inputs = [x, param(`${name}.weight`), ...(block.bias ? [param(`${name}.bias`)] : [])];
        [y] = g.node("Conv", inputs, {
          attributes: {
            kernel_shape: ints([block.kernel, block.kernel]),
            pads: ints([pad, pad, pad, pad]),
            strides: ints([block.stride, block.stride]),
          },
        });
        break;
      }
      case "batchnorm": {
        const image = current.length === 3;
        const axes = image ? [0, 2, 3] : [0];
        const cshape = shapeConst(
          g,
          `${name}.cshape`,
          image ? [1, current[0], 1, 1] : [1, current[0]],
        );
        const channel = (v: string) => g.node("Reshape", [v, cshape])[0];
        const eps = scalar(g, `${name}.eps`, BN_EPS);
        const invStdOf = (variance: string) =>
          g.node("Reciprocal", g.node("Sqrt", g.node("Add", [variance, eps])))[0];
        const gamma = channel(param(`${name}.scale`));
        const beta = channel(param(`${name}.shift`));
        if (!tape.training) {
          const [centred] = g.node("Sub", [x, channel(param(`${name}.mean`))]);
          const [xhat] = g.node("Mul", [centred, invStdOf(channel(param(`${name}.var`)))]);
          [y] = g.node("Add", [...g.node("Mul", [xhat, gamma]), beta]);
          break;
        }
        const reduceMean = (v: string) =>
          g.node("ReduceMean", [v], { attributes: { axes: ints(axes), keepdims: { int: 1 } } })[0];
        const mean = reduceMean(x);
        const [centred] = g.node("Sub", [x, mean]);
        const variance = reduceMean(g.node("Mul", [centred, centred])[0]);
        const invStd = invStdOf(variance);
        // One pass fewer than normalising first: the scale folds into a per-channel factor.
        const [a] = g.node("Mul", [gamma, invStd]);
        [y] = g.node("Add", [...g.node("Mul", [centred, a]), beta]);
        Object.assign(saved, { centred, invStd, a });
        if (tape.batch === null) break;
        // Running statistics as PyTorch keeps them: momentum 0.1, unbiased variance.
        const batch = tape.batch;
        const count = axes.reduce((m, a) => m * (a === 0 ? batch : current[a - 1]), 1);
        const flat = shapeConst(g, `${name}.flat`, [current[0]]);
        const [batchMean] = g.node("Reshape", [mean, flat]);
        const [batchVar] = g.node("Mul", [
          ...g.node("Reshape", [variance, flat]),
          scalar(g, `${name}.unbias`, count / Math.max(1, count - 1)),
        ]);
        const keep = scalar(g, `${name}.keep`, 1 - BN_MOMENTUM);
        const take = scalar(g, `${name}.take`, BN_MOMENTUM);
        for (const [stat, value] of [["mean", batchMean], ["var", batchVar]]) {
          const [updated] = g.node("Add", [
            ...g.node("Mul", [param(`${name}.${stat}`), keep]),
            ...g.node("Mul", [value, take]),
          ]);
          tape.running.set(`${name}.${stat}`, updated);
        }
        break;
      }
      case "relu":
        [y] = g.node("Relu", [x]);
        break;
      case "maxpool": {
        const [out, index] = g.node("MaxPool", [x], {
          outputs: 2,
          attributes: {
            kernel_shape: ints([block.size, block.size]),
            strides: ints([block.size, block.size]),
          },
        });
        y = out;
        saved.index = index;
        break;
      }
      case "gap":
        [y] = g.node("Flatten", g.node("GlobalAveragePool", [x]), {
          attributes: { axis: { int: 1 } },
        });
        break;
      case "dense":
        [y] = g.node("MatMul", [x, param(`${name}.weight`)]);
        if (block.bias) [y] = g.node("Add", [y, param(`${name}.bias`)]);
        break;
      case "l2norm": {
        const [norm] = g.node("Max", [
          ...g.node("ReduceL2", [x], { attributes: { axes: ints([1]), keepdims: { int: 1 } } }),
          scalar(g, `${name}.floor`, 1e-12),
        ]);
        [y] = g.node("Div", [x, norm]);
        saved.norm = norm;
        break;
      }
      case "groupnorm": {
        const groups = block.groups;
        const [xg] = g.node("Reshape", [x, shapeConst(g, `${name}.gshape`, [0, groups, -1])]);
        const cshape = shapeConst(g, `${name}.cshape`, [1, current[0], 1, 1]);
        const [gamma] = g.node("Reshape", [param(`${name}.scale`), cshape]);
        const [beta] = g.node("Reshape", [param(`${name}.shift`), cshape]);
        if (tape.batch === null) {
          // Inference (sampling, export): nothing is kept for a backward pass, so the grouped
          // normalisation is one InstanceNormalization over [N, groups, rest] (unit scale, zero
          // shift): onnxruntime runs it as one fused kernel instead of eight elementwise passes.
          const ones = g.constant(`${name}.gones`, new Float32Array(groups).fill(1), [groups]);
          const zeros = g.constant(`${name}.gzeros`, new Float32Array(groups), [groups]);
          const [normed] = g.node("InstanceNormalization", [xg, ones, zeros], {
            attributes: { epsilon: { float: GN_EPS } },
          });
          const [xhat] = g.node("Reshape", [normed, ...g.node("Shape", [x])]);
          [y] = g.node("Add", [...g.node("Mul", [xhat, gamma]), beta]);
          break;
        }
        // Training: three passes that write (the centring, then y = centred a + beta with the
        // per-sample, per-channel factor a = invStd gamma), the variance read off the centred
        // values without writing their squares; xhat is never stored (the backward works from the
        // centred values and invStd).
        const count = (current[0] / groups) * current[1] * current[2];
        const [centredGrouped] = g.node("Sub", [
          xg,
          ...g.node("ReduceMean", [xg], {
            attributes: { axes: ints([2]), keepdims: { int: 1 } },
          }),
        ]);
        const [variance] = g.node("Mul", [
          ...g.node("ReduceSumSquare", [centredGrouped], {
            attributes: { axes: ints([2]), keepdims: { int: 1 } },
          }),
          scalar(g, `${name}.count`, 1 / count),
        ]);
        const [invStd] = g.node(
          "Reciprocal",
          g.node("Sqrt", g.node("Add", [variance, scalar(g, `${name}.eps`, GN_EPS)])),
        );
        const [centred] = g.node("Reshape", [
          centredGrouped,
          shapeConst(g, `${name}.xshape`, [0, ...current]),
        ]);
        const [a] = g.node("Mul", [
          perChannel(g, name, "a", invStd, current[0], groups, true),
          gamma,
        ]);
        [y] = g.node("Add", [...g.node("Mul", [centred, a]), beta]);
        Object.assign(saved, { centred, invStd });
        break;
      }
      case "silu": {
        const [s] = g.node("Sigmoid", [x]);
        [y] = g.node("Mul", [x, s]);
        saved.sigmoid = s;
        break;
      }
      case "upsample":
        [y] = g.node("Resize", [
          x,
          "",
          g.constant(`${name}.scales`, Float32Array.of(1, 1, 2, 2), [4]),
        ], {
          attributes: {
            mode: { string: "nearest" },
            coordinate_transformation_mode: { string: "asymmetric" },
            nearest_mode: { string: "floor" },
          },
        });
        break;
      case "push":
        (tape.skips ??= []).push(x);
        y = x;
        break;
      case "concat": {
        const skip = tape.skips?.pop();
        if (!skip) throw new Error(`concat ${name}: no skip pushed`);
        [y] = g.node("Concat", [x, skip], { attributes: { axis: { int: 1 } } });
        break;
      }
      case "embed": {
        if (!tape.time) throw new Error(`embed ${name}: the graph has no time input`);
        const half = block.features / 2;
        const [angles] = g.node("Mul", [
          ...g.node("Unsqueeze", [tape.time, shapeConst(g, `${name}.axis`, [1])]),
          g.constant(`${name}.freqs`, fourierFrequencies(block.features), [1, half]),
        ]);
        const [features] = g.node("Concat", [
          ...g.node("Sin", [angles]),
          ...g.node("Cos", [angles]),
        ], { attributes: { axis: { int: 1 } } });
        body = [];
        tape.embedding = emitTapedForward(
          g,
          block.body,
          features,
          [block.features],
          param,
          tape,
          body,
          `${name}.body.`,
        );
        saved.embedding = tape.embedding;
        y = x;
        break;
      }
      case "cond": {
        const embedding = tape.embedding;
        if (!embedding) throw new Error(`cond ${name}: no embed block before it`);
        const [shift] = g.node("Add", [
          ...g.node("MatMul", [embedding, param(`${name}.weight`)]),
          param(`${name}.bias`),
        ]);
        [y] = g.node("Add", [
          x,
          ...g.node("Unsqueeze", [shift, shapeConst(g, `${name}.axes`, [2, 3])]),
        ]);
        saved.embedding = embedding;
        break;
      }
      case "residual": {
        body = [];
        shortcut = [];
        const a = emitTapedForward(g, block.body, x, current, param, tape, body, `${name}.body.`);
        const b = emitTapedForward(
          g,
          block.shortcut,
          x,
          current,
          param,
          tape,
          shortcut,
          `${name}.shortcut.`,
        );
        [y] = g.node("Add", [a, b]);
        break;
      }
    }
    entries.push({ block, name, shape: current, x, y, saved, body, shortcut });
    x = y;
    current = block.kind === "residual" ? outShapeOf(block, current) : outputShape(block, current);
  });
  return x;
}

function outShapeOf(block: Block & { kind: "residual" }, shape: ActShape): ActShape {
  return block.body.reduce(
    (s, b) => (b.kind === "residual" ? outShapeOf(b, s) : outputShape(b, s)),
    shape,
  );
}

/**
 * The backward pass from dy (the gradient of the output of `entries`); adds each parameter's
 * gradient to `grads` (summing where a parameter is used twice) and returns dx. A training step
 * passes inputGradient = false: a first conv then skips its dx (onnxruntime runs unused nodes),
 * and the returned value is not the input's gradient.
 */
export function emitBackward(
  g: GraphBuilder,
  entries: readonly Entry[],
  dy: string,
  batch: number,
  param: (name: string) => string,
  grads: Map<string, string>,
  inputGradient = true,
  skipGrads: string[] = [],
): string {
  const add = (name: string, value: string) => {
    const previous = grads.get(name);
    grads.set(name, previous ? g.node("Add", [previous, value])[0] : value);
  };
  let d = dy;
  for (let e = entries.length - 1; e >= 0; e--) {
    const { block, name, shape, x, y, saved } = entries[e];
    switch (block.kind) {
      case "conv": {
        const pad = convPad(block);
        const out = outputShape(block, shape);
        const s = block.stride;
        const outputPadding = [1, 2].map((a) =>
          shape[a] - ((out[a] - 1) * s - 2 * pad + block.kernel)
        );
        const w = param(`${name}.weight`);
        const dx = e === 0 && !inputGradient
          ? d
          : s === 1 && shape[0] >= block.out
          ? flippedConv(g, name, d, w, block.kernel, pad)
          : g.node("ConvTranspose", [d, w], {
            attributes: {
              kernel_shape: ints([block.kernel, block.kernel]),
              pads: ints([pad, pad, pad, pad]),
              strides: ints([s, s]),
              output_padding: ints(outputPadding),
            },
          })[0];
        add(`${name}.weight`, weightGrad(g, name, x, d, block, shape, out));
        if (block.bias) {
          add(
            `${name}.bias`,
            g.node("ReduceSum", [d, shapeConst(g, `${name}.ba`, [0, 2, 3])], {
              attributes: { keepdims: { int: 0 } },
            })[0],
          );
        }
        d = dx;
        break;
      }
      case "batchnorm": {
        const image = shape.length === 3;
        const axes = shapeConst(g, `${name}.gaxes`, image ? [0, 2, 3] : [0]);
        const sum = (v: string) =>
          g.node("ReduceSum", [v, axes], { attributes: { keepdims: { int: 1 } } })[0];
        const flat = shapeConst(g, `${name}.gflat`, [shape[0]]);
        const { centred, invStd, a } = saved;
        const [dgamma] = g.node("Mul", [sum(g.node("Mul", [d, centred])[0]), invStd]);
        const dbeta = sum(d);
        add(`${name}.scale`, g.node("Reshape", [dgamma, flat])[0]);
        add(`${name}.shift`, g.node("Reshape", [dbeta, flat])[0]);
        const count = batch * shape.slice(1).reduce((m, v) => m * v, 1);
        const [minusA] = g.node("Mul", [a, scalar(g, `${name}.per`, -1 / count)]);
        const [b] = g.node("Mul", [...g.node("Mul", [minusA, dgamma]), invStd]);
        const [c] = g.node("Mul", [minusA, dbeta]);
        [d] = g.node("Add", [
          ...g.node("Add", [...g.node("Mul", [d, a]), ...g.node("Mul", [centred, b])]),
          c,
        ]);
        break;
      }
      case "relu": {
        const [positive] = g.node("Greater", [y, scalar(g, `${name}.zero`, 0)]);
        [d] = g.node("Where", [positive, d, `${name}.zero`]);
        break;
      }
      case "maxpool": {
        // MaxUnpool writes each dy at its window's argmax (windows do not overlap, kernel = stride):
        // one pass, where a scatter-add into zeros took two and measured slower.
        [d] = g.node("MaxUnpool", [
          d,
          saved.index,
          shapeConst(g, `${name}.xshape`, [batch, ...shape]),
        ], {
          attributes: {
            kernel_shape: ints([block.size, block.size]),
            strides: ints([block.size, block.size]),
          },
        });
        break;
      }
      case "gap": {
        const [c, h, w] = shape;
        const [per] = g.node("Mul", [d, scalar(g, `${name}.area`, 1 / (h * w))]);
        [d] = g.node("Expand", [
          ...g.node("Reshape", [per, shapeConst(g, `${name}.col`, [batch, c, 1, 1])]),
          shapeConst(g, `${name}.xshape`, [batch, c, h, w]),
        ]);
        break;
      }
      case "dense": {
        const w = param(`${name}.weight`);
        add(`${name}.weight`, g.node("MatMul", [...g.node("Transpose", [x]), d])[0]);
        if (block.bias) {
          add(
            `${name}.bias`,
            g.node("ReduceSum", [d, shapeConst(g, `${name}.ba`, [0])], {
              attributes: { keepdims: { int: 0 } },
            })[0],
          );
        }
        [d] = g.node("MatMul", [d, ...g.node("Transpose", [w])]);
        break;
      }
      case "l2norm": {
        const [dot] = g.node("ReduceSum", [
          ...g.node("Mul", [y, d]),
          shapeConst(g, `${name}.axis`, [1]),
        ], {
          attributes: { keepdims: { int: 1 } },
        });
        [d] = g.node("Div", [...g.node("Sub", [d, ...g.node("Mul", [y, dot])]), saved.norm]);
        break;
      }
      case "groupnorm": {
        // With xhat = centred invStd, g = dy gamma and the group means m1 = mean(g), m2 =
        // mean(g xhat): dx = invStd (g - m1 - xhat m2) = A dy + B centred + C, where A = invStd
        // gamma per sample and channel and B = -invStd^3 mean(g centred), C = -invStd m1 per
        // sample and group. Every mean comes from two per-channel sums over H x W (of dy and of
        // dy centred), which also give the parameter gradients.
        const { centred, invStd } = saved;
        const [c, h, w] = shape;
        const groups = block.groups;
        const count = (c / groups) * h * w;
        const hw = shapeConst(g, `${name}.hw`, [2, 3]);
        const first = shapeConst(g, `${name}.n`, [0]);
        const sum = (v: string, axes: string) =>
          g.node("ReduceSum", [v, axes], { attributes: { keepdims: { int: 0 } } })[0];
        const sumD = sum(d, hw);
        const sumDCentred = sum(g.node("Mul", [d, centred])[0], hw);
        const invC = perChannel(g, name, "inv", invStd, c, groups, false);
        const gamma = param(`${name}.scale`);
        add(`${name}.scale`, sum(g.node("Mul", [invC, sumDCentred])[0], first));
        add(`${name}.shift`, sum(sumD, first));
        const grouped = shapeConst(g, `${name}.groups`, [0, groups, -1]);
        const last = shapeConst(g, `${name}.last`, [2]);
        const perCount = scalar(g, `${name}.bcount`, 1 / count);
        const groupMean = (perSampleChannel: string) =>
          g.node("Mul", [
            ...g.node("ReduceSum", [
              ...g.node("Reshape", [...g.node("Mul", [perSampleChannel, gamma]), grouped]),
              last,
            ], { attributes: { keepdims: { int: 1 } } }),
            perCount,
          ])[0];
        const [negative] = g.node("Neg", [invStd]);
        const [cube] = g.node("Mul", [negative, ...g.node("Mul", [invStd, invStd])]);
        const image = shapeConst(g, `${name}.c11`, [0, c, 1, 1]);
        const spread = (v: string) => g.node("Reshape", [v, image])[0];
        const [aTerm] = g.node("Mul", [d, spread(g.node("Mul", [invC, gamma])[0])]);
        const [bTerm] = g.node("Mul", [
          centred,
          perChannel(
            g,
            name,
            "b",
            g.node("Mul", [cube, groupMean(sumDCentred)])[0],
            c,
            groups,
            true,
          ),
        ]);
        const cTerm = perChannel(
          g,
          name,
          "c",
          g.node("Mul", [negative, groupMean(sumD)])[0],
          c,
          groups,
          true,
        );
        [d] = g.node("Add", [...g.node("Add", [aTerm, bTerm]), cTerm]);
        break;
      }
      case "silu": {
        // silu'(x) = s (1 + x - y) with s = sigmoid(x) and y = x s.
        const [slope] = g.node("Mul", [
          saved.sigmoid,
          ...g.node("Add", [
            ...g.node("Sub", [x, y]),
            scalar(g, `${name}.one`, 1),
          ]),
        ]);
        [d] = g.node("Mul", [d, slope]);
        break;
      }
      case "upsample": {
        const [c, h, w] = shape;
        [d] = g.node("ReduceSum", [
          ...g.node("Reshape", [d, shapeConst(g, `${name}.blocks`, [batch, c, h, 2, w, 2])]),
          shapeConst(g, `${name}.baxes`, [3, 5]),
        ], { attributes: { keepdims: { int: 0 } } });
        break;
      }
      case "push": {
        const skip = skipGrads.pop();
        if (!skip) throw new Error(`push ${name}: no gradient from its concat`);
        [d] = g.node("Add", [d, skip]);
        break;
      }
      case "concat": {
        const [dx, dskip] = g.node("Split", [
          d,
          shapeConst(g, `${name}.split`, [shape[0], block.skip]),
        ], { outputs: 2, attributes: { axis: { int: 1 } } });
        skipGrads.push(dskip);
        d = dx;
        break;
      }
      case "cond": {
        const [perChannel] = g.node("ReduceSum", [d, shapeConst(g, `${name}.hw`, [2, 3])], {
          attributes: { keepdims: { int: 0 } },
        });
        const embedding = saved.embedding;
        add(
          `${name}.weight`,
          g.node("MatMul", [...g.node("Transpose", [embedding]), perChannel])[0],
        );
        add(
          `${name}.bias`,
          g.node("ReduceSum", [perChannel, shapeConst(g, `${name}.ba`, [0])], {
            attributes: { keepdims: { int: 0 } },
          })[0],
        );
        add(
          embeddingGrad(embedding),
          g.node("MatMul", [perChannel, ...g.node("Transpose", [param(`${name}.weight`)])])[0],
        );
        break;
      }
      case "embed": {
        const key = embeddingGrad(saved.embedding);
        const dEmbedding = grads.get(key);
        if (dEmbedding) {
          grads.delete(key);
          emitBackward(g, entries[e].body!, dEmbedding, batch, param, grads);
        }
        break;
      }
      case "residual": {
        const a = emitBackward(g, entries[e].body!, d, batch, param, grads, true, skipGrads);
        const b = emitBackward(g, entries[e].shortcut!, d, batch, param, grads, true, skipGrads);
        [d] = g.node("Add", [a, b]);
        break;
      }
    }
  }
  return d;
}

// Per-layer formulations, chosen by measurement (BENCHMARKS.md, "training step: formulations";
// onnxruntime 1.30, 1 and 2 threads): the input gradient of a stride-1 conv that keeps or shrinks
// its channel count (every ResNet-18 body conv, a U-Net decoder conv after its skip concat) is a
// Conv by the flipped, transposed kernel, which beats ConvTranspose there by 10-20 % (and 4x on
// the tiny U-Net's 48-to-16 conv at 28x28), while ConvTranspose wins where the count grows (the
// small CNN). The weight gradient is GEMMs over shifted copies of the input: one GEMM per kernel
// tap, or one GEMM over all taps stacked (im2col) for inputs of few channels; both beat the
// swapped-axes conv, which onnxruntime runs unblocked, by 1.3-2x.
const STACK_MAX_CHANNELS = 8;

/** dx of a stride-1 conv: Conv(dy, W^T flipped), W^T swapping the in and out channels. */
function flippedConv(
  g: GraphBuilder,
  name: string,
  dy: string,
  w: string,
  kernel: number,
  pad: number,
): string {
  const [transposed] = g.node("Transpose", [w], { attributes: { perm: ints([1, 0, 2, 3]) } });
  const [flipped] = g.node("Slice", [
    transposed,
    shapeConst(g, `${name}.fs`, [-1, -1]),
    shapeConst(g, `${name}.fe`, [-kernel - 1, -kernel - 1]),
    shapeConst(g, `${name}.fa`, [2, 3]),
    shapeConst(g, `${name}.fp`, [-1, -1]),
  ]);
  const p = kernel - 1 - pad;
  return g.node("Conv", [dy, flipped], {
    attributes: { kernel_shape: ints([kernel, kernel]), pads: ints([p, p, p, p]) },
  })[0];
}

/**
 * dW[o, c, a, b] = sum over n, i, j of dy[n, o, i, j] x_padded[n, c, s i + a, s j + b]: for each
 * tap (a, b) the strided shift of the channel-first padded input, a [C, N Ho Wo] matrix, against
 * dy as [O, N Ho Wo].
 */
function weightGrad(
  g: GraphBuilder,
  name: string,
  x: string,
  dy: string,
  block: Block & { kind: "conv" },
  shape: ActShape,
  out: ActShape,
): string {
  const { kernel: k, stride: s } = block;
  const pad = convPad(block);
  const channelFirst = { attributes: { perm: ints([1, 0, 2, 3]) } };
  let [xT] = g.node("Transpose", [x], channelFirst);
  if (pad > 0) {
    [xT] = g.node("Pad", [xT, shapeConst(g, `${name}.pads`, [0, 0, pad, pad, 0, 0, pad, pad])]);
  }
  const matrix = shapeConst(g, `${name}.cm`, [shape[0], -1]);
  if (s === 1 && k > 1 && out[0] < shape[0]) return shiftedDyGrad(g, name, xT, matrix, dy, k, out);
  // A 1x1 stride-1 conv's only tap is the input itself: no Slice, so no slice constants either
  // (an unused initializer makes onnxruntime print a warning per session).
  const whole = k === 1 && s === 1;
  const axes = whole ? "" : shapeConst(g, `${name}.ca`, [2, 3]);
  const steps = whole ? "" : shapeConst(g, `${name}.cs`, [s, s]);
  const taps: string[] = [];
  for (let a = 0; a < k; a++) {
    for (let b = 0; b < k; b++) {
      const shifted = whole ? xT : g.node("Slice", [
        xT,
        shapeConst(g, `${name}.c${a}.${b}`, [a, b]),
        shapeConst(g, `${name}.e${a}.${b}`, [a + (out[1] - 1) * s + 1, b + (out[2] - 1) * s + 1]),
        axes,
        steps,
      ])[0];
      taps.push(g.node("Reshape", [shifted, matrix])[0]);
    }
  }
  const [dyT] = g.node("Reshape", [
    ...g.node("Transpose", [dy], channelFirst),
    shapeConst(g, `${name}.dm`, [out[0], -1]),
  ]);
  const gemm = (patches: string) =>
    g.node("Gemm", [dyT, patches], { attributes: { transB: { int: 1 } } })[0];
  const concat = (values: string[], axis: number) =>
    values.length === 1
      ? values[0]
      : g.node("Concat", values, { attributes: { axis: { int: axis } } })[0];
  // [O, k k C] in (a, b, c) order either way.
  const product = shape[0] < STACK_MAX_CHANNELS ? gemm(concat(taps, 0)) : concat(taps.map(gemm), 1);
  return g.node("Transpose", [
    ...g.node("Reshape", [product, shapeConst(g, `${name}.wk`, [out[0], k, k, shape[0]])]),
  ], { attributes: { perm: ints([0, 3, 1, 2]) } })[0];
}

/**
 * The same sums for a stride-1 conv with fewer output than input channels (a U-Net decoder conv
 * after its skip concat, the last conv to the image): shifting dy instead of x, each tap dy zero-
 * padded to the padded input's frame so that the flattened [O, N Hp Wp] matrix lines up with x's,
 * copies O instead of C channels per tap.
 */
function shiftedDyGrad(
  g: GraphBuilder,
  name: string,
  xPadded: string,
  matrix: string,
  dy: string,
  k: number,
  out: ActShape,
): string {
  const [xMatrix] = g.node("Reshape", [xPadded, matrix]);
  const [dyT] = g.node("Transpose", [dy], { attributes: { perm: ints([1, 0, 2, 3]) } });
  const dyMatrix = shapeConst(g, `${name}.dm`, [out[0], -1]);
  const taps: string[] = [];
  for (let a = 0; a < k; a++) {
    for (let b = 0; b < k; b++) {
      const [framed] = g.node("Pad", [
        dyT,
        shapeConst(g, `${name}.dp${a}.${b}`, [0, 0, a, b, 0, 0, k - 1 - a, k - 1 - b]),
      ]);
      taps.push(
        g.node("Gemm", [...g.node("Reshape", [framed, dyMatrix]), xMatrix], {
          attributes: { transB: { int: 1 } },
        })[0],
      );
    }
  }
  const [product] = g.node("Concat", taps, { attributes: { axis: { int: 1 } } });
  return g.node("Transpose", [
    ...g.node("Reshape", [product, shapeConst(g, `${name}.wk`, [out[0], k, k, -1])]),
  ], { attributes: { perm: ints([0, 3, 1, 2]) } })[0];
}
