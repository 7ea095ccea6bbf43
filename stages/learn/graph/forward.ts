// The forward ONNX graph of a model description, for inference and export: NHWC input (sia's
// batch layout) transposed once to NCHW, onnxruntime's native conv layout, any batch size. The
// blocks are emitted by the same code the training graphs use (backward.ts's taped forward), so
// what is trained is what is exported. Parameters enter as constants or as graph inputs.

import { GraphBuilder } from "../../../core/onnx.ts";
import type { Params } from "../blocks/init.ts";
import type { ActShape, Block, ParamSpec } from "../blocks/model.ts";
import { paramSpecs } from "../blocks/model.ts";
import { emitTapedForward } from "./backward.ts";

export interface ForwardOptions {
  /** Batch norm from the batch's statistics, or from the running statistics (eval). */
  readonly training: boolean;
  /** Parameters as constants baked into the model, or as inputs named like the parameters. */
  readonly params: Params | "inputs";
}

/** A model: input "x" ([N, H, W, C] for image models, [N, F] for heads), output "y". */
export function forwardModel(blocks: readonly Block[], input: ActShape, options: ForwardOptions): {
  model: Uint8Array;
  specs: ParamSpec[];
} {
  const image = input.length === 3;
  const shape: ActShape = image ? [input[2], input[0], input[1]] : input;
  const specs = paramSpecs(blocks, shape);
  const g = new GraphBuilder("forward");
  const x = g.input("x", "float", ["N", ...input]);
  for (const spec of specs) {
    if (options.params === "inputs") g.input(spec.name, "float", spec.shape);
    else g.constant(spec.name, options.params.get(spec.name)!, spec.shape);
  }
  const [nchw] = image
    ? g.node("Transpose", [x], { attributes: { perm: { ints: [0, 3, 1, 2] } } })
    : [x];
  const tape = { batch: null, training: options.training, entries: [], running: new Map() };
  const out = emitTapedForward(g, blocks, nchw, shape, (name) => name, tape);
  g.node("Identity", [out], { outputs: ["y"] });
  g.output("y", "float", ["N", "F"]);
  return { model: g.build(), specs };
}

/**
 * A time-conditioned model (a velocity network) as the flow contract wants it: inputs "x"
 * [N, C, H, W] and "t" [N], output "out" [N, C, H, W], any batch size. `shape` is [C, H, W].
 */
export function timedForwardModel(
  blocks: readonly Block[],
  shape: readonly [number, number, number],
  params: Params | "inputs",
): Uint8Array {
  const specs = paramSpecs(blocks, shape);
  const g = new GraphBuilder("flow");
  const x = g.input("x", "float", ["N", ...shape]);
  const t = g.input("t", "float", ["N"]);
  for (const spec of specs) {
    if (params === "inputs") g.input(spec.name, "float", spec.shape);
    else g.constant(spec.name, params.get(spec.name)!, spec.shape);
  }
  const tape = { batch: null, training: true, entries: [], running: new Map(), time: t };
  const out = emitTapedForward(g, blocks, x, shape, (name) => name, tape);
  g.node("Identity", [out], { outputs: ["out"] });
  g.output("out", "float", ["N", ...shape]);
  return g.build();
}
