// A gradient graph for checking and for the training step: inputs x (NHWC or [N, F]), every
// parameter, and dy; outputs y, dx ("dx") and each trainable parameter's gradient
// ("grad.<name>"). Batch norm runs in training mode. A time-conditioned model (one with an embed
// block) also takes "t" [N].

import { GraphBuilder } from "../../../core/onnx.ts";
import type { ActShape, Block, ParamSpec } from "../blocks/model.ts";
import { paramSpecs, walk } from "../blocks/model.ts";
import { emitBackward, emitTapedForward } from "./backward.ts";
import type { Tape } from "./backward.ts";

export function gradientModel(blocks: readonly Block[], input: ActShape, batch: number): {
  model: Uint8Array;
  specs: ParamSpec[];
  outputShape: number[];
} {
  const image = input.length === 3;
  const shape: ActShape = image ? [input[2], input[0], input[1]] : input;
  const specs = paramSpecs(blocks, shape);
  const out = walk(blocks, shape, () => {});
  const g = new GraphBuilder("gradient");
  g.input("x", "float", [batch, ...input]);
  for (const s of specs) g.input(s.name, "float", s.shape);
  // Image outputs leave (and their gradient enters) in NHWC, as sia's batches and tfjs have them.
  const imageOut = out.length === 3;
  const outputShape = imageOut ? [batch, out[1], out[2], out[0]] : [batch, ...out];
  g.input("dy", "float", outputShape);
  const timed = blocks.some((b) => b.kind === "embed");
  if (timed) g.input("t", "float", [batch]);
  const [nchw] = image
    ? g.node("Transpose", ["x"], { attributes: { perm: { ints: [0, 3, 1, 2] } } })
    : ["x"];
  const tape: Tape = {
    batch,
    training: true,
    entries: [],
    running: new Map(),
    time: timed ? "t" : undefined,
  };
  const param = (name: string) => name;
  const y = emitTapedForward(g, blocks, nchw, shape, param, tape);
  const toNhwc = { attributes: { perm: { ints: [0, 2, 3, 1] } } };
  const toNchw = { attributes: { perm: { ints: [0, 3, 1, 2] } } };
  g.node(imageOut ? "Transpose" : "Identity", [y], { outputs: ["y"], ...(imageOut ? toNhwc : {}) });
  g.output("y", "float", outputShape);
  const grads = new Map<string, string>();
  const [dy] = imageOut ? g.node("Transpose", ["dy"], toNchw) : ["dy"];
  const dx = emitBackward(g, tape.entries, dy, batch, param, grads);
  if (image) g.node("Transpose", [dx], { outputs: ["dx"], ...toNhwc });
  else g.node("Identity", [dx], { outputs: ["dx"] });
  g.output("dx", "float", [batch, ...input]);
  for (const s of specs.filter((s) => s.trainable)) {
    g.node("Identity", [grads.get(s.name)!], { outputs: [`grad.${s.name}`] });
    g.output(`grad.${s.name}`, "float", s.shape);
  }
  return { model: g.build(), specs, outputShape };
}
