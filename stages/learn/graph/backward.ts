// Reverse mode, written by hand per block, as ONNX nodes. The forward pass is emitted onto a tape
// that keeps what each backward needs (a conv's input, batch norm's xhat and 1/std, max-pool
// indices), then the tape is walked backwards. Training graphs have a fixed batch size, so every
// shape here is static.
//
// Per block (NCHW; y = f(x), dy given):
//   conv      dx = ConvTranspose(dy, W); dW = Conv(x^T, dy^T, dilation = stride)^T over the
//             batch axis (the swapped-axes convolution); db = sum(dy)
//   batchnorm dx = (1/std)(dxhat - mean(dxhat) - xhat mean(dxhat xhat)), dxhat = gamma dy;
//             dgamma = sum(dy xhat); dbeta = sum(dy)
//   relu      dx = dy where y > 0
//   maxpool   dx = scatter-add of dy at the argmax indices
//   gap       dx = dy / (H W) broadcast
//   dense     dx = dy W^T; dW = x^T dy; db = sum(dy)
//   l2norm    dx = (dy - y sum(y dy)) / |x|
//   residual  dx = body'(dy) + shortcut'(dy)

import type { GraphBuilder } from "../../../core/onnx.ts";
import type { ActShape, Block } from "../blocks/model.ts";
import { BN_EPS, BN_MOMENTUM, convPad, outputShape } from "../blocks/model.ts";

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
}

function ints(values: readonly number[]) {
  return { ints: values };
}

function scalar(g: GraphBuilder, name: string, value: number): string {
  return g.constant(name, Float32Array.of(value), []);
}

function shapeConst(g: GraphBuilder, name: string, dims: readonly number[]): string {
  return g.constant(name, BigInt64Array.from(dims.map(BigInt)), [dims.length]);
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
        const [xhat] = g.node("Mul", [centred, invStd]);
        [y] = g.node("Add", [...g.node("Mul", [xhat, gamma]), beta]);
        Object.assign(saved, { xhat, invStd, gamma });
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
 * gradient to `grads` (summing where a parameter is used twice) and returns dx.
 */
export function emitBackward(
  g: GraphBuilder,
  entries: readonly Entry[],
  dy: string,
  batch: number,
  param: (name: string) => string,
  grads: Map<string, string>,
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
        const [dx] = g.node("ConvTranspose", [d, param(`${name}.weight`)], {
          attributes: {
            kernel_shape: ints([block.kernel, block.kernel]),
            pads: ints([pad, pad, pad, pad]),
            strides: ints([s, s]),
            output_padding: ints(outputPadding),
          },
        });
        // Weight gradient: the batch axis becomes the channel axis of a convolution of x by dy.
        const [xT] = g.node("Transpose", [x], { attributes: { perm: ints([1, 0, 2, 3]) } });
        const [dyT] = g.node("Transpose", [d], { attributes: { perm: ints([1, 0, 2, 3]) } });
        let [dw] = g.node("Conv", [xT, dyT], {
          attributes: { pads: ints([pad, pad, pad, pad]), dilations: ints([s, s]) },
        });
        const reach = shape[1] + 2 * pad - (out[1] - 1) * s;
        if (reach !== block.kernel || shape[2] + 2 * pad - (out[2] - 1) * s !== block.kernel) {
          // A stride that does not divide the padded size leaves extra taps: keep the first k.
          [dw] = g.node("Slice", [
            dw,
            shapeConst(g, `${name}.s0`, [0, 0]),
            shapeConst(g, `${name}.s1`, [block.kernel, block.kernel]),
            shapeConst(g, `${name}.sa`, [2, 3]),
          ]);
        }
        add(
          `${name}.weight`,
          g.node("Transpose", [dw], { attributes: { perm: ints([1, 0, 2, 3]) } })[0],
        );
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
        const reduce = (v: string, keep: number) =>
          g.node(keep ? "ReduceMean" : "ReduceSum", [v, ...(keep ? [] : [axes])], {
            attributes: keep
              ? { axes: ints(image ? [0, 2, 3] : [0]), keepdims: { int: 1 } }
              : { keepdims: { int: 0 } },
          })[0];
        const { xhat, invStd, gamma } = saved;
        add(`${name}.scale`, reduce(g.node("Mul", [d, xhat])[0], 0));
        add(`${name}.shift`, reduce(d, 0));
        const [dxhat] = g.node("Mul", [d, gamma]);
        const meanD = reduce(dxhat, 1);
        const meanDX = reduce(g.node("Mul", [dxhat, xhat])[0], 1);
        const [inner] = g.node("Sub", [
          ...g.node("Sub", [dxhat, meanD]),
          ...g.node("Mul", [xhat, meanDX]),
        ]);
        [d] = g.node("Mul", [inner, invStd]);
        break;
      }
      case "relu": {
        const [positive] = g.node("Greater", [y, scalar(g, `${name}.zero`, 0)]);
        [d] = g.node("Where", [positive, d, `${name}.zero`]);
        break;
      }
      case "maxpool": {
        const size = batch * shape.reduce((a, b) => a * b, 1);
        const [zeros] = g.node("ConstantOfShape", [shapeConst(g, `${name}.size`, [size])]);
        const flat = shapeConst(g, `${name}.flat`, [-1]);
        const [scattered] = g.node("ScatterElements", [
          zeros,
          ...g.node("Reshape", [saved.index, flat]),
          ...g.node("Reshape", [d, flat]),
        ], { attributes: { axis: { int: 0 }, reduction: { string: "add" } } });
        [d] = g.node("Reshape", [scattered, shapeConst(g, `${name}.xshape`, [batch, ...shape])]);
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
      case "residual": {
        const a = emitBackward(g, entries[e].body!, d, batch, param, grads);
        const b = emitBackward(g, entries[e].shortcut!, d, batch, param, grads);
        [d] = g.node("Add", [a, b]);
        break;
      }
    }
  }
  return d;
}
