// A whole SimCLR step compiled to one ONNX graph equals the same step done in tfjs: the loss, and
// every parameter and running statistic after the update, for SGD, LARS and Adam, with and
// without gradient clipping. And it learns: the loss falls over 20 steps.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { Rng } from "../../../../core/rng.ts";
import type { Block } from "../../../../stages/learn/blocks/model.ts";
import {
  BN_MOMENTUM,
  projectionHead,
  smallCnn,
  walk,
} from "../../../../stages/learn/blocks/model.ts";
import { forward } from "../../../../stages/learn/blocks/tfjs.ts";
import type { BatchStats } from "../../../../stages/learn/blocks/tfjs.ts";
import type { Optimizer } from "../../../../stages/learn/graph/optimizers.ts";
import { trainStep } from "../../../../stages/learn/graph/train_step.ts";
import { Trainer } from "../../../../stages/learn/graph/trainer.ts";
import { maxRelativeError } from "../../../_shared.ts";

await tf.setBackend("cpu");

const TAU = 0.5;
const conv = (out: number, stride = 1): Block => ({
  kind: "conv",
  out,
  kernel: 3,
  stride,
  bias: false,
});
/** A small encoder with every block kind the small CNN has, plus a head ending in l2norm. */
const MODEL: Block[] = [
  conv(8),
  { kind: "batchnorm" },
  { kind: "relu" },
  { kind: "maxpool", size: 2 },
  conv(12, 2),
  { kind: "batchnorm" },
  { kind: "relu" },
  { kind: "gap" },
  ...projectionHead(16, 8),
  { kind: "l2norm" },
];
const INPUT = [10, 10, 1] as const;
const BATCH = 6;

interface Case {
  readonly blocks: Block[];
  readonly input: readonly [number, number, number];
  readonly batch: number;
}
const SMALL: Case = { blocks: MODEL, input: INPUT, batch: BATCH };

function views(c: Case, seed: number): Float32Array {
  const rng = new Rng(seed, "views");
  return Float32Array.from(
    { length: 2 * c.batch * c.input[0] * c.input[1] * c.input[2] },
    () => rng.uniform(),
  );
}

function ntXent(z: tf.Tensor2D): tf.Scalar {
  const rows = z.shape[0];
  const n = rows / 2;
  const sim = tf.div(tf.matMul(z, z, false, true), TAU);
  const masked = tf.add(sim, tf.mul(tf.eye(rows), -1e9));
  const logProb = tf.logSoftmax(masked, 1);
  const positive = tf.oneHot(
    tf.tensor1d(Array.from({ length: rows }, (_, i) => (i + n) % rows), "int32"),
    rows,
  );
  return tf.neg(tf.div(tf.sum(tf.mul(logProb, positive)), rows)) as tf.Scalar;
}

/** The same step in tfjs: returns the loss and every tensor after the update. */
function referenceStep(
  { blocks, input, batch }: Case,
  trainer: Trainer,
  x: Float32Array,
  optimizer: Optimizer,
  lr: number,
  clip: number,
): { loss: number; after: Map<string, Float32Array> } {
  const params = trainer.graph.params;
  const trainable = params.filter((p) => p.trainable);
  let result: { loss: number; after: Map<string, Float32Array> } | undefined;
  tf.tidy(() => {
    const fixed = new Map(
      params.filter((p) => !p.trainable).map((
        p,
      ) => [p.name, tf.tensor(trainer.value(p.name).slice(), [...p.shape])]),
    );
    const stats = new Map<string, BatchStats>();
    const f = (...ps: tf.Tensor[]) => {
      const all = new Map<string, tf.Tensor>(fixed);
      trainable.forEach((p, i) => all.set(p.name, ps[i]));
      stats.clear();
      const z = forward(
        blocks,
        all,
        tf.tensor(x, [2 * batch, ...input]),
        true,
        stats,
      ) as tf.Tensor2D;
      return ntXent(z);
    };
    const values = trainable.map((p) => tf.tensor(trainer.value(p.name).slice(), [...p.shape]));
    const { value, grads } = tf.valueAndGrads(f)(values);
    let g = grads.map((t) => t.dataSync() as Float32Array);
    if (clip > 0) {
      const norm = Math.sqrt(g.reduce((s, a) => s + a.reduce((t, v) => t + v * v, 0), 0));
      const scale = Math.min(1, clip / (norm + 1e-6));
      g = g.map((a) => a.map((v) => v * scale));
    }
    const after = new Map<string, Float32Array>();
    trainable.forEach((p, i) => {
      const theta = trainer.value(p.name);
      const grad = g[i];
      const next = new Float32Array(theta.length);
      if (optimizer.kind === "sgd") {
        const v = trainer.value(`${p.name}.momentum`);
        const nv = new Float32Array(theta.length);
        for (let j = 0; j < theta.length; j++) {
          nv[j] = optimizer.momentum * v[j] + grad[j] + optimizer.weightDecay * theta[j];
          next[j] = theta[j] - lr * nv[j];
        }
        after.set(`${p.name}.momentum`, nv);
      } else if (optimizer.kind === "lars") {
        const v = trainer.value(`${p.name}.momentum`);
        const nv = new Float32Array(theta.length);
        const excluded = !p.name.endsWith(".weight");
        const d = grad.map((gv, j) => gv + (excluded ? 0 : optimizer.weightDecay * theta[j]));
        const tn = Math.hypot(...theta);
        const dn = Math.hypot(...d);
        const trust = excluded || tn === 0 || dn === 0 ? 1 : (optimizer.eta * tn) / dn;
        for (let j = 0; j < theta.length; j++) {
          nv[j] = optimizer.momentum * v[j] + lr * trust * d[j];
          next[j] = theta[j] - nv[j];
        }
        after.set(`${p.name}.momentum`, nv);
      } else {
        const m = trainer.value(`${p.name}.adam_m`);
        const v = trainer.value(`${p.name}.adam_v`);
        const nm = new Float32Array(theta.length);
        const nv = new Float32Array(theta.length);
        for (let j = 0; j < theta.length; j++) {
          const d = grad[j] + optimizer.weightDecay * theta[j];
          nm[j] = optimizer.beta1 * m[j] + (1 - optimizer.beta1) * d;
          nv[j] = optimizer.beta2 * v[j] + (1 - optimizer.beta2) * d * d;
          const mHat = nm[j] / (1 - optimizer.beta1);
          const vHat = nv[j] / (1 - optimizer.beta2);
          next[j] = theta[j] - (lr * mHat) / (Math.sqrt(vHat) + optimizer.eps);
        }
        after.set(`${p.name}.adam_m`, nm);
        after.set(`${p.name}.adam_v`, nv);
      }
      after.set(p.name, next);
    });
    // Running statistics: momentum 0.1, unbiased batch variance over the reduced count.
    const counts = new Map<string, number>();
    walk(blocks, [input[2], input[0], input[1]], (block, name, shape) => {
      if (block.kind === "batchnorm") {
        counts.set(name, 2 * batch * (shape.length === 3 ? shape[1] * shape[2] : 1));
      }
    });
    for (const [name, { mean, variance }] of stats) {
      const m = mean.dataSync();
      const v = variance.dataSync();
      const reduce = counts.get(name)!;
      after.set(
        `${name}.mean`,
        trainer.value(`${name}.mean`).map((r, j) => (1 - BN_MOMENTUM) * r + BN_MOMENTUM * m[j]),
      );
      after.set(
        `${name}.var`,
        trainer.value(`${name}.var`).map((r, j) =>
          (1 - BN_MOMENTUM) * r + BN_MOMENTUM * v[j] * reduce / (reduce - 1)
        ),
      );
      mean.dispose();
      variance.dispose();
    }
    result = { loss: value.dataSync()[0], after };
  });
  return result!;
}

const optimizers: [string, Optimizer, number][] = [
  ["sgd", { kind: "sgd", momentum: 0.9, weightDecay: 1e-4 }, 0],
  ["sgd, clipped", { kind: "sgd", momentum: 0.9, weightDecay: 1e-4 }, 0.05],
  ["lars", { kind: "lars", momentum: 0.9, weightDecay: 1e-4, eta: 0.02 }, 0],
  ["adam", { kind: "adam", beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-4 }, 0],
];

async function checkStep(c: Case, optimizer: Optimizer, clip: number): Promise<void> {
  const graph = trainStep({
    blocks: c.blocks,
    input: c.input,
    batch: c.batch,
    loss: { kind: "ntxent", tau: TAU },
    optimizer,
    clip,
  });
  const trainer = await Trainer.create(graph, 2, [2 * c.batch, ...c.input]);
  // A non-zero optimizer state, so the momentum terms are exercised too.
  const rng = new Rng(4, "state");
  for (const s of graph.state) {
    trainer.value(s.name).forEach((
      _,
      i,
      a,
    ) => (a[i] = s.name.endsWith("adam_v") ? 1e-4 * rng.uniform() : 1e-3 * rng.normal()));
  }
  const x = views(c, 1);
  const lr = 0.05;
  const want = referenceStep(c, trainer, x, optimizer, lr, clip);
  const scalars: Record<string, number> = optimizer.kind === "adam"
    ? { lr, adam_c1: 1 / (1 - 0.9), adam_c2: 1 / (1 - 0.999) }
    : { lr };
  const loss = await trainer.step(x, scalars);
  await trainer.release();
  assert.ok(
    Math.abs(loss - want.loss) < 1e-5 * Math.abs(want.loss),
    `loss ${loss} vs ${want.loss}`,
  );
  for (const [tensor, value] of want.after) {
    const rel = maxRelativeError(trainer.value(tensor), value, 1e-6);
    assert.ok(rel < 1e-4, `${tensor}: relative difference ${rel}`);
  }
}

for (const [name, optimizer, clip] of optimizers) {
  Deno.test(`one SimCLR step (${name}) equals tfjs: loss, parameters, state, running statistics`, () =>
    checkStep(SMALL, optimizer, clip));
}

Deno.test("one SimCLR step of the real small CNN + projection head (SGD) equals tfjs to 1e-4", () =>
  checkStep(
    {
      blocks: [...smallCnn(), ...projectionHead(128, 128), { kind: "l2norm" }],
      input: [28, 28, 1],
      batch: 4,
    },
    { kind: "sgd", momentum: 0.9, weightDecay: 1e-6 },
    0,
  ));

Deno.test("20 SGD steps on a fixed batch lower the NT-Xent loss", async () => {
  const graph = trainStep({
    blocks: MODEL,
    input: INPUT,
    batch: BATCH,
    loss: { kind: "ntxent", tau: TAU },
    optimizer: { kind: "sgd", momentum: 0.9, weightDecay: 0 },
    clip: 0,
  });
  const trainer = await Trainer.create(graph, 3, [2 * BATCH, ...INPUT]);
  const x = views(SMALL, 2);
  const first = await trainer.step(x, { lr: 0.1 });
  let last = first;
  for (let i = 0; i < 19; i++) last = await trainer.step(x, { lr: 0.1 });
  await trainer.release();
  assert.ok(last < first - 0.3, `loss ${first} -> ${last}`);
});
