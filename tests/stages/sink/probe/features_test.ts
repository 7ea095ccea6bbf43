// Frozen features: extraction equals the tfjs eval-mode forward pass, and neither the extraction
// nor the probes run on its features change a single bit of the encoder's tensors. A randomly
// initialised small CNN already gives kNN features well above chance on embedded MNIST.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { Rng } from "../../../../core/rng.ts";
import { initParams } from "../../../../stages/learn/blocks/init.ts";
import type { Params } from "../../../../stages/learn/blocks/init.ts";
import type { ActShape, Block } from "../../../../stages/learn/blocks/model.ts";
import { paramSpecs, projectionHead, smallCnn } from "../../../../stages/learn/blocks/model.ts";
import { forward, tfParams } from "../../../../stages/learn/blocks/tfjs.ts";
import { trainStep } from "../../../../stages/learn/graph/train_step.ts";
import { Trainer } from "../../../../stages/learn/graph/trainer.ts";
import { makeDataset, splitStratified, subset } from "../../../../stages/load/dataset.ts";
import { loadEmbeddedMnist } from "../../../../stages/load/mnist.ts";
import { extractFeatures } from "../../../../stages/sink/probe/features.ts";
import { knnAccuracy } from "../../../../stages/sink/probe/knn.ts";
import { linearProbeAccuracy } from "../../../../stages/sink/probe/linear.ts";
import { maxRelativeError } from "../../../_shared.ts";

await tf.setBackend("cpu");

function uniform(length: number, key: string): Float32Array {
  const rng = new Rng(13, key);
  return Float32Array.from({ length }, () => rng.uniform());
}

/** Bytes of every tensor, copied: the witness that nothing was written. */
function bits(params: ReadonlyMap<string, Float32Array>): Map<string, Uint8Array> {
  return new Map(
    [...params].map((
      [name, v],
    ) => [name, new Uint8Array(v.buffer, v.byteOffset, v.byteLength).slice()]),
  );
}

function assertSameBits(
  params: ReadonlyMap<string, Float32Array>,
  before: Map<string, Uint8Array>,
) {
  assert.deepEqual([...params.keys()], [...before.keys()]);
  for (const [name, v] of params) {
    assert.deepEqual(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), before.get(name), name);
  }
}

/** The tfjs oracle in eval mode, and the largest difference relative to its largest value. */
async function relativeToTfjs(
  blocks: Block[],
  input: ActShape,
  params: ReadonlyMap<string, Float32Array>,
  images: Float32Array,
  got: Float32Array,
): Promise<number> {
  const image = input.length === 3;
  const shapes = new Map(
    paramSpecs(blocks, image ? [input[2], input[0], input[1]] : input).map((
      s,
    ) => [s.name, s.shape]),
  );
  const encoder = new Map([...params].filter(([name]) => shapes.has(name)));
  const n = images.length / input.reduce((a, b) => a * b, 1);
  const want = await tf.tidy(() =>
    forward(blocks, tfParams(encoder, shapes), tf.tensor(images, [n, ...input]), false)
  ).data();
  return maxRelativeError(got, want);
}

Deno.test("extractFeatures = tfjs eval forward; encoder bit-identical after extraction and probes", async () => {
  const blocks = smallCnn();
  const input = [28, 28, 1];
  const params: Params = initParams(paramSpecs(blocks, [1, 28, 28]), 3);
  const rng = new Rng(5, "running");
  for (const [name, v] of params) {
    if (name.endsWith(".mean")) v.forEach((_, i) => (v[i] = rng.normal() * 0.1));
    if (name.endsWith(".var")) v.forEach((_, i) => (v[i] = 0.5 + rng.uniform()));
  }
  const n = 70;
  const images = uniform(n * 28 * 28, "images");
  const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
  const dataset = makeDataset("test", images, [n, 28, 28, 1], labels);
  const before = bits(params);
  const imagesBefore = images.slice();

  // 32 + 32 + 6: the last batch is partial.
  const features = await extractFeatures(blocks, input, params, dataset, 32);
  assert.equal(features.length, n * 128);
  const rel = await relativeToTfjs(blocks, input, params, images, features);
  assert.ok(rel < 1e-5, `relative difference ${rel}`);
  assertSameBits(params, before);
  assert.deepEqual(images, imagesBefore);
  // Batching does not change the features (row-independent eval graph).
  const whole = await extractFeatures(blocks, input, params, dataset, 1000);
  const maxDiff = features.reduce((m, v, i) => Math.max(m, Math.abs(v - whole[i])), 0);
  assert.ok(maxDiff < 1e-6, `batching changed features by ${maxDiff}`);

  const train = features.subarray(0, 50 * 128);
  const test = features.subarray(50 * 128);
  const featuresBefore = features.slice();
  for (const backend of ["js", "onnx"] as const) {
    await knnAccuracy(train, labels.subarray(0, 50), test, labels.subarray(50), 128, { backend });
  }
  linearProbeAccuracy(train, labels.subarray(0, 50), test, labels.subarray(50), 128, { seed: 1 });
  assertSameBits(params, before);
  assert.deepEqual(features, featuresBefore);
});

Deno.test("features of a Trainer's encoder: frozen snapshot, trainer untouched", async () => {
  const encoder: Block[] = [
    { kind: "conv", out: 6, kernel: 3, stride: 1, bias: false },
    { kind: "batchnorm" },
    { kind: "relu" },
    { kind: "gap" },
  ];
  const blocks = [...encoder, ...projectionHead(8, 4), { kind: "l2norm" } as const];
  const graph = trainStep({
    blocks,
    input: [8, 8, 1],
    batch: 4,
    loss: { kind: "ntxent", tau: 0.5 },
    optimizer: { kind: "sgd", momentum: 0.9, weightDecay: 1e-4 },
    clip: 0,
  });
  const trainer = await Trainer.create(graph, 1, [8, 8, 8, 1]);
  try {
    // Two steps: non-trivial weights and running statistics.
    for (let i = 0; i < 2; i++) await trainer.step(uniform(512, `x${i}`), { lr: 0.1 });
    const live = new Map(trainer.names().map((name) => [name, trainer.value(name)]));
    const before = bits(live);
    const n = 20;
    const images = uniform(n * 64, "trainer-images");
    const labels = Int32Array.from({ length: n }, (_, i) => i % 2);
    const dataset = makeDataset("test", images, [n, 8, 8, 1], labels);
    const features = await extractFeatures(encoder, [8, 8, 1], live, dataset, 8);
    assert.equal(features.length, n * 6);
    const rel = await relativeToTfjs(encoder, [8, 8, 1], live, images, features);
    assert.ok(rel < 1e-5, `relative difference ${rel}`);
    await knnAccuracy(
      features.subarray(0, 60),
      labels.subarray(0, 10),
      features.subarray(60),
      labels.subarray(10),
      6,
    );
    linearProbeAccuracy(
      features.subarray(0, 60),
      labels.subarray(0, 10),
      features.subarray(60),
      labels.subarray(10),
      6,
      { seed: 0 },
    );
    assertSameBits(live, before);
    assert.equal(trainer.steps, 2);
    for (const name of trainer.names()) assert.equal(trainer.value(name), live.get(name), name);
    // Training goes on afterwards; the features already taken stay as they were.
    const kept = features.slice();
    await trainer.step(uniform(512, "x2"), { lr: 0.1 });
    const after = bits(new Map([["0.weight", trainer.value("0.weight")]]));
    assert.notDeepEqual(after.get("0.weight"), before.get("0.weight"), "the trainer still trains");
    assert.deepEqual(features, kept);
  } finally {
    await trainer.release();
  }
});

Deno.test("random-init small CNN: kNN on embedded MNIST features is well above chance", async () => {
  const blocks = smallCnn();
  const [trainAll, testAll] = splitStratified(loadEmbeddedMnist(), 0.2, 1);
  const train = subset(trainAll, 2000, true, 1);
  const test = subset(testAll, 500, true, 1);
  const params = initParams(paramSpecs(blocks, [1, 28, 28]), 0);
  const before = bits(params);
  let t0 = performance.now();
  const trainFeatures = await extractFeatures(blocks, [28, 28, 1], params, train);
  const testFeatures = await extractFeatures(blocks, [28, 28, 1], params, test);
  const extractMs = performance.now() - t0;
  t0 = performance.now();
  const knn = await knnAccuracy(trainFeatures, train.labels, testFeatures, test.labels, 128, {
    classes: 10,
  });
  const knnMs = performance.now() - t0;
  t0 = performance.now();
  const linear = linearProbeAccuracy(trainFeatures, train.labels, testFeatures, test.labels, 128, {
    classes: 10,
    seed: 1,
  });
  const linearMs = performance.now() - t0;
  const pixels = await knnAccuracy(train.images, train.labels, test.images, test.labels, 784, {
    classes: 10,
  });
  console.log(
    `random-init small CNN, MNIST 2000 / 500: kNN ${knn.accuracy} (${knn.correct}/${knn.total}), ` +
      `linear ${linear.accuracy} (lambda ${linear.lambda}); raw-pixel kNN ${pixels.accuracy}; ` +
      `extract ${extractMs.toFixed(0)} ms, kNN ${knnMs.toFixed(0)} ms, linear ${
        linearMs.toFixed(0)
      } ms`,
  );
  assert.ok(knn.accuracy > 0.5, `kNN accuracy ${knn.accuracy}`);
  assert.ok(linear.accuracy > 0.5, `linear accuracy ${linear.accuracy}`);
  assertSameBits(params, before);
});
