// oneDNN's three conv passes equal onnxruntime's compiled gradient graph (itself equal to tfjs's
// tf.grads, tests/stages/learn/graph/backward_test.ts) to 1e-5 relative, for the layer shapes the
// encoders use: 3x3 same at stride 1 and 2, valid on odd sizes, a 1x1 stride-2 shortcut.

import assert from "node:assert/strict";
import { DnnlConv, openDnnl } from "../../core/dnnl.ts";
import { createSession, ort } from "../../core/onnx.ts";
import { Rng } from "../../core/rng.ts";
import { initParams } from "../../stages/learn/blocks/init.ts";
import { convPad } from "../../stages/learn/blocks/model.ts";
import type { Block } from "../../stages/learn/blocks/model.ts";
import { gradientModel } from "../../stages/learn/graph/gradient.ts";
import { maxRelativeError } from "../_shared.ts";

const dnnl = openDnnl();

function random(length: number, key: string): Float32Array {
  const rng = new Rng(5, key);
  return Float32Array.from({ length }, () => rng.normal());
}

const cases: { label: string; block: Block & { kind: "conv" }; input: [number, number, number] }[] =
  [
    { label: "3x3 same 8->16 at 9x9", block: conv(16, 3, 1), input: [9, 9, 8] },
    { label: "3x3 same stride 2, 7x5", block: conv(6, 3, 2), input: [7, 5, 4] },
    { label: "3x3 valid stride 2, 7x5", block: conv(6, 3, 2, "valid"), input: [7, 5, 4] },
    { label: "1x1 stride 2 (shortcut)", block: conv(8, 1, 2), input: [8, 8, 4] },
  ];

function conv(
  out: number,
  kernel: number,
  stride: number,
  padding: "same" | "valid" = "same",
): Block & { kind: "conv" } {
  return { kind: "conv", out, kernel, stride, bias: false, padding };
}

for (const { label, block, input } of cases) {
  Deno.test({
    name: `oneDNN conv ${label}: y, dx, dW = onnxruntime's gradient graph`,
    ignore: dnnl === null,
    fn: async () => {
      const batch = 3;
      const { model, specs, outputShape } = gradientModel([block], input, batch);
      const w = initParams(specs, 2).get("0.weight")!;
      const x = random(batch * input[0] * input[1] * input[2], `x${label}`);
      const dy = random(outputShape.reduce((a, b) => a * b, 1), `dy${label}`);
      const session = await createSession(model);
      const want = await session.run({
        x: new ort.Tensor("float32", x, [batch, ...input]),
        dy: new ort.Tensor("float32", dy, outputShape),
        "0.weight": new ort.Tensor("float32", w, [...specs[0].shape]),
      });
      await session.release();
      const layer = new DnnlConv(dnnl!, {
        batch,
        inChannels: input[2],
        height: input[0],
        width: input[1],
        outChannels: block.out,
        kernel: block.kernel,
        stride: block.stride,
        pad: convPad(block),
      });
      assert.deepEqual([layer.outHeight, layer.outWidth], outputShape.slice(1, 3));
      const y = new Float32Array(dy.length);
      const dx = new Float32Array(x.length);
      const dw = new Float32Array(w.length);
      layer.setWeights(w);
      layer.forward(x, y);
      layer.backwardData(dy, dx);
      layer.backwardWeights(x, dy, dw);
      layer.release();
      const errors = {
        y: maxRelativeError(y, want.y.data as Float32Array),
        dx: maxRelativeError(dx, want.dx.data as Float32Array),
        dw: maxRelativeError(dw, want["grad.0.weight"].data as Float32Array),
      };
      for (const [name, e] of Object.entries(errors)) assert.ok(e < 1e-5, `${name}: ${e}`);
    },
  });
}

Deno.test("SIA_ENGINE=onnxruntime: openDnnl declines, so callers fall back", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { openDnnl } from "${new URL("../../core/dnnl.ts", import.meta.url)}";
console.log(openDnnl() === null ? "none" : "dnnl");`,
    ],
    env: { SIA_ENGINE: "onnxruntime" },
  }).output();
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "none");
});
