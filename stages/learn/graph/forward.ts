// The forward ONNX graph of a model description: NHWC input (sia's batch layout) transposed once
// to NCHW, onnxruntime's native conv layout. Parameters enter as constants (inference, export) or
// as graph inputs (training graphs, where they change every step).

import { GraphBuilder } from "../../../core/onnx.ts";
import type { Params } from "../blocks/init.ts";
import type { ActShape, Block, ParamSpec } from "../blocks/model.ts";
import { BN_EPS, BN_MOMENTUM, convPad, paramSpecs, walk } from "../blocks/model.ts";

export interface ForwardOptions {
  /** Batch-norm with batch statistics (and running-statistic outputs) or with running statistics. */
  readonly training: boolean;
  /** Parameters as constants baked into the model, or as inputs named like the parameters. */
  readonly params: Params | "inputs";
}

/** Emits the blocks after `input` (NCHW or [N, F]); returns the output name. */
export function emitBlocks(
  g: GraphBuilder,
  blocks: readonly Block[],
  input: string,
  shape: ActShape,
  training: boolean,
  param: (name: string) => string,
  runningStats: string[],
  prefix = "",
): string {
  let x = input;
  walk(blocks, shape, (block, name) => {
    // walk() recurses into residual bodies itself; emit each residual at its own level below.
    if (name.slice(prefix.length).includes(".")) return;
    switch (block.kind) {
      case "conv": {
        const pad = convPad(block);
        const inputs = [x, param(`${name}.weight`), ...(block.bias ? [param(`${name}.bias`)] : [])];
        [x] = g.node("Conv", inputs, {
          attributes: {
            kernel_shape: { ints: [block.kernel, block.kernel] },
            pads: { ints: [pad, pad, pad, pad] },
            strides: { ints: [block.stride, block.stride] },
          },
        });
        break;
      }
      case "batchnorm": {
        const inputs = [x, ...["scale", "shift", "mean", "var"].map((s) => param(`${name}.${s}`))];
        if (training) {
          const outputs = g.node("BatchNormalization", inputs, {
            outputs: 3,
            attributes: {
              epsilon: { float: BN_EPS },
              momentum: { float: 1 - BN_MOMENTUM },
              training_mode: { int: 1 },
            },
          });
          x = outputs[0];
          runningStats.push(outputs[1], outputs[2]);
        } else {
          [x] = g.node("BatchNormalization", inputs, {
            attributes: { epsilon: { float: BN_EPS } },
          });
        }
        break;
      }
      case "relu":
        [x] = g.node("Relu", [x]);
        break;
      case "maxpool":
        [x] = g.node("MaxPool", [x], {
          attributes: {
            kernel_shape: { ints: [block.size, block.size] },
            strides: { ints: [block.size, block.size] },
          },
        });
        break;
      case "gap":
        [x] = g.node("Flatten", g.node("GlobalAveragePool", [x]), {
          attributes: { axis: { int: 1 } },
        });
        break;
      case "dense":
        [x] = g.node("MatMul", [x, param(`${name}.weight`)]);
        if (block.bias) [x] = g.node("Add", [x, param(`${name}.bias`)]);
        break;
      case "l2norm": {
        const [norm] = g.node("ReduceL2", [x], {
          attributes: { axes: { ints: [1] }, keepdims: { int: 1 } },
        });
        const floor = g.constant(`${name}.floor`, Float32Array.of(1e-12), []);
        [x] = g.node("Div", [x, ...g.node("Max", [norm, floor])]);
        break;
      }
      case "residual": {
        const body = emitBlocks(
          g,
          block.body,
          x,
          shape,
          training,
          param,
          runningStats,
          `${name}.body.`,
        );
        const shortcut = emitBlocks(
          g,
          block.shortcut,
          x,
          shape,
          training,
          param,
          runningStats,
          `${name}.shortcut.`,
        );
        [x] = g.node("Add", [body, shortcut]);
        break;
      }
    }
  }, prefix);
  return x;
}

/**
 * A model: input "x" ([N, H, W, C] for image models, [N, F] for heads), output "y"; in training
 * mode also the updated running statistics, named "<bn>.mean_out" and "<bn>.var_out".
 */
export function forwardModel(blocks: readonly Block[], input: ActShape, options: ForwardOptions): {
  model: Uint8Array;
  specs: ParamSpec[];
} {
  const image = input.length === 3;
  const shape: ActShape = image ? [input[2], input[0], input[1]] : input;
  const specs = paramSpecs(blocks, shape);
  const g = new GraphBuilder("forward");
  const x = g.input("x", "float", image ? ["N", input[0], input[1], input[2]] : ["N", input[0]]);
  for (const spec of specs) {
    if (options.params === "inputs") g.input(spec.name, "float", spec.shape);
    else g.constant(spec.name, options.params.get(spec.name)!, spec.shape);
  }
  const nchw = image
    ? g.node("Transpose", [x], { attributes: { perm: { ints: [0, 3, 1, 2] } } })[0]
    : x;
  const running: string[] = [];
  const out = emitBlocks(g, blocks, nchw, shape, options.training, (name) => name, running);
  g.node("Identity", [out], { outputs: ["y"] });
  g.output("y", "float", ["N", "F"]);
  const bns = specs.filter((s) => s.name.endsWith(".mean"));
  running.forEach((name, i) => {
    const stat = bns[Math.floor(i / 2)];
    const outName = `${stat.name.slice(0, -".mean".length)}.${i % 2 ? "var" : "mean"}_out`;
    g.node("Identity", [name], { outputs: [outName] });
    g.output(outName, "float", stat.shape);
  });
  return { model: g.build(), specs };
}
