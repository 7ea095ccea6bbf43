// The ONNX forward graph equals the tfjs oracle built from the same description and weights.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { createSession, ort } from "../../../../core/onnx.ts";
import { Rng } from "../../../../core/rng.ts";
import { initParams } from "../../../../stages/learn/blocks/init.ts";
import type { Params } from "../../../../stages/learn/blocks/init.ts";
import { projectionHead, resnet18Cifar, smallCnn } from "../../../../stages/learn/blocks/model.ts";
import type { ActShape, Block } from "../../../../stages/learn/blocks/model.ts";
import { forward, tfParams } from "../../../../stages/learn/blocks/tfjs.ts";
import { forwardModel } from "../../../../stages/learn/graph/forward.ts";
import { maxRelativeError } from "../../../_shared.ts";

await tf.setBackend("cpu");

function randomInput(shape: number[], seed: number): Float32Array {
  const rng = new Rng(seed, "forward-test");
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.uniform());
}

/** Runs both and returns the largest difference relative to the output's largest magnitude. */
async function compare(
  blocks: Block[],
  input: ActShape,
  batch: number,
  training: boolean,
  tweak?: (params: Params) => void,
): Promise<number> {
  const { model, specs } = forwardModel(blocks, input, { training, params: "inputs" });
  const params = initParams(specs, 3);
  tweak?.(params);
  const xShape = [batch, ...input];
  const x = randomInput(xShape, batch);
  const session = await createSession(model);
  const feeds: Record<string, ort.Tensor> = { x: new ort.Tensor("float32", x, xShape) };
  for (const s of specs) {
    feeds[s.name] = new ort.Tensor("float32", params.get(s.name)!, [...s.shape]);
  }
  const got = (await session.run(feeds)).y.data as Float32Array;
  await session.release();
  const shapes = new Map(specs.map((s) => [s.name, s.shape]));
  const want = await tf.tidy(() =>
    forward(blocks, tfParams(params, shapes), tf.tensor(x, xShape), training)
  ).data();
  return maxRelativeError(got, want);
}

Deno.test("small CNN forward, training-mode batch norm: ONNX = tfjs to 1e-5", async () => {
  assert.ok(await compare(smallCnn(), [28, 28, 1], 8, true) < 1e-5);
});

Deno.test("small CNN forward, eval-mode batch norm with non-trivial running statistics", async () => {
  const rel = await compare(smallCnn(), [28, 28, 1], 4, false, (params) => {
    const rng = new Rng(5, "running");
    for (const [name, v] of params) {
      if (name.endsWith(".mean")) v.forEach((_, i) => (v[i] = rng.normal() * 0.1));
      if (name.endsWith(".var")) v.forEach((_, i) => (v[i] = 0.5 + rng.uniform()));
    }
  });
  assert.ok(rel < 1e-5, `relative difference ${rel}`);
});

Deno.test("projection head with batch norm and L2 normalisation: ONNX = tfjs", async () => {
  const head: Block[] = [
    ...projectionHead(32, 16).slice(0, 1),
    { kind: "batchnorm" },
    ...projectionHead(32, 16).slice(1),
    {
      kind: "l2norm",
    },
  ];
  assert.ok(await compare(head, [24], 6, true) < 1e-5);
});

Deno.test("CIFAR ResNet-18 forward (strided residual shortcuts): ONNX = tfjs to 1e-4", async () => {
  // Twenty layers of float32 convolutions summed in different orders: 1e-4 relative.
  assert.ok(await compare(resnet18Cifar(), [32, 32, 3], 2, true) < 1e-4);
});
