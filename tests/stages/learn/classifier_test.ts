// The supervised classifier (small CNN + dense head, softmax cross-entropy, Adam with cosine decay) on a tiny run of
// the embedded MNIST beats chance (10 %) by a wide margin on held-out digits, and its loss falls.

import assert from "node:assert/strict";
import { Rng } from "../../../core/rng.ts";
import { classifier } from "../../../stages/learn/classifier.ts";
import { cosineWithWarmup } from "../../../stages/learn/graph/schedules.ts";
import { subset } from "../../../stages/load/dataset.ts";
import { loadSplits } from "../../../stages/load/resolve.ts";

Deno.test("classifier: 150 steps on 500 MNIST digits score far above chance on 500 held-out ones", async () => {
  const splits = await loadSplits("mnist", { testFraction: 0.2, splitSeed: 0, labels: "" });
  const train = subset(splits.train, 500, true, 0);
  const test = subset(splits.test!, 500, false, 0);
  const batch = 32;
  const model = await classifier({
    input: [28, 28, 1],
    classes: 10,
    batch,
    optimizer: { kind: "adam", beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 },
    seed: 0,
    hidden: 64,
    widths: [8, 16, 32],
  });
  try {
    const size = 28 * 28;
    const x = new Float32Array(batch * size);
    const y = new Int32Array(batch);
    const losses: number[] = [];
    for (let step = 0; step < 150; step++) {
      const rng = new Rng(0, "classifier-test", step);
      for (let j = 0; j < batch; j++) {
        const i = rng.int(500);
        x.set(train.images.subarray(i * size, (i + 1) * size), j * size);
        y[j] = train.labels[i];
      }
      losses.push(
        await model.step(x, y, cosineWithWarmup(step, { base: 1e-2, warmup: 0, total: 150 })),
      );
    }
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
    assert.ok(mean(losses.slice(-20)) < 0.5 * mean(losses.slice(0, 20)), `losses ${losses}`);
    const predicted = await model.predict(test.images, 500);
    const accuracy = predicted.filter((p, i) => p === test.labels[i]).length / 500;
    assert.ok(accuracy > 0.6, `accuracy ${accuracy} (chance 0.1)`);
  } finally {
    await model.release();
  }
});
