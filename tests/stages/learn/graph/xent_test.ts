// The softmax cross-entropy piece (the classifier's loss) against tfjs: the loss and its gradient
// equal tf.losses.softmaxCrossEntropy's value and tf.grad of it (cpu backend), for one-hot and for
// soft targets, to 1e-5.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { createSession, GraphBuilder, ort } from "../../../../core/onnx.ts";
import { Rng } from "../../../../core/rng.ts";
import { emitSoftmaxCrossEntropy } from "../../../../stages/learn/graph/losses.ts";
import { maxRelativeError } from "../../../_shared.ts";

await tf.setBackend("cpu");

async function compiled(logits: Float32Array, target: Float32Array, rows: number, k: number) {
  const g = new GraphBuilder("xent_test");
  g.input("z", "float", [rows, k]);
  g.input("t", "float", [rows, k]);
  const { loss, dlogits } = emitSoftmaxCrossEntropy(g, "z", "t", rows);
  g.node("Identity", [loss], { outputs: ["loss"] });
  g.output("loss", "float", []);
  g.node("Identity", [dlogits], { outputs: ["dz"] });
  g.output("dz", "float", [rows, k]);
  const session = await createSession(g.build(), 1);
  try {
    const out = await session.run({
      z: new ort.Tensor("float32", logits, [rows, k]),
      t: new ort.Tensor("float32", target, [rows, k]),
    });
    return { loss: (out.loss.data as Float32Array)[0], dz: out.dz.data as Float32Array };
  } finally {
    await session.release();
  }
}

function oracle(logits: Float32Array, target: Float32Array, rows: number, k: number) {
  return tf.tidy(() => {
    const t = tf.tensor(target, [rows, k]);
    // Mean over rows of -sum_k t log softmax(z): tf's loss with no reduction, then the mean.
    const f = (z: tf.Tensor) =>
      tf.mean(tf.losses.softmaxCrossEntropy(t, z, undefined, 0, tf.Reduction.NONE)) as tf.Scalar;
    const z = tf.tensor(logits, [rows, k]);
    return {
      loss: f(z).dataSync()[0],
      dz: tf.grad(f)(z).dataSync() as Float32Array,
    };
  });
}

for (const soft of [false, true]) {
  Deno.test(`softmax cross-entropy (${soft ? "soft" : "one-hot"} targets): loss and gradient = tfjs`, async () => {
    const [rows, k] = [12, 10];
    const rng = new Rng(3, "xent", soft ? 1 : 0);
    const logits = Float32Array.from({ length: rows * k }, () => 3 * rng.normal());
    const target = new Float32Array(rows * k);
    for (let r = 0; r < rows; r++) {
      if (!soft) target[r * k + rng.int(k)] = 1;
      else {
        const w = Array.from({ length: k }, () => rng.exponential());
        const total = w.reduce((a, b) => a + b, 0);
        w.forEach((v, j) => (target[r * k + j] = v / total));
      }
    }
    const got = await compiled(logits, target, rows, k);
    const want = oracle(logits, target, rows, k);
    assert.ok(
      Math.abs(got.loss - want.loss) / want.loss < 1e-5,
      `loss ${got.loss} vs ${want.loss}`,
    );
    const err = maxRelativeError(got.dz, want.dz);
    assert.ok(err < 1e-5, `gradient relative error ${err}`);
  });
}
