// The trained flow's learner: the prediction-to-velocity conversions reproduce the exact b*, the
// efm target with every training image is the exact b*, the compiled step computes the same
// regression loss as tfjs on the same pairs, training lowers it, and the export equals the tfjs
// oracle at any batch size.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { Rng } from "../../../core/rng.ts";
import { createSession, ort } from "../../../core/onnx.ts";
import { exactDenoise, velocity } from "../../../stages/generate/interpolant/field.ts";
import { interpolant } from "../../../stages/generate/interpolant/schedule.ts";
import { paramSpecs } from "../../../stages/learn/blocks/model.ts";
import { forwardTimed } from "../../../stages/learn/blocks/tfjs.ts";
import { FlowLearner, velocityFromPrediction } from "../../../stages/learn/flow.ts";
import type { FlowOptions } from "../../../stages/learn/flow.ts";

await tf.setBackend("cpu");

/** n 8x8 images on [0, 1]: smooth blobs at seeded places, so there is structure to learn. */
function blobs(n: number, seed = 3): Float32Array {
  const rng = new Rng(seed, "blobs");
  const out = new Float32Array(n * 64);
  for (let i = 0; i < n; i++) {
    const [cy, cx] = [1.5 + 5 * rng.uniform(), 1.5 + 5 * rng.uniform()];
    for (let p = 0; p < 64; p++) {
      const [y, x] = [Math.floor(p / 8), p % 8];
      out[i * 64 + p] = Math.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 3);
    }
  }
  return out;
}

const OPTIONS: FlowOptions = {
  preset: "tiny",
  batch: 8,
  lr: 3e-3,
  warmup: 5,
  steps: 60,
  ema: 0,
  clip: 1,
  target: "velocity",
  interpolant: { schedule: "linear", gamma: "none" },
  efmExtra: 0,
  seed: 1,
};

Deno.test("denoiser and noise predictions of the exact field convert to the exact b*", () => {
  const n = 5;
  const d = 6;
  const rng = new Rng(2, "points");
  const points = { y: Float32Array.from({ length: n * d }, () => rng.uniform()), n, d };
  for (const schedule of ["linear", "trig", "vp"] as const) {
    const c = interpolant({ schedule, gamma: "none" }).at(0.37);
    const x = Float64Array.from({ length: d }, () => rng.normal());
    const { m, nearest2 } = exactDenoise(points, x, 1, c.beta, c.sigma2);
    const exact = velocity(c, false, x, { my: m, ma: null, nearest2 }, new Float64Array(d));
    const noise = m.map((mj, j) => (x[j] - c.beta * mj) / c.alpha);
    for (
      const [kind, p] of [["velocity", exact], ["denoiser", m], ["noise", noise]] as const
    ) {
      const got = velocityFromPrediction(kind, c, x, p, new Float64Array(d));
      got.forEach((v, j) => assert.ok(Math.abs(v - exact[j]) < 1e-9, `${schedule} ${kind}[${j}]`));
    }
  }
});

Deno.test("efm with M >= N regresses the exact closed-form b* of the training set", async () => {
  const learner = await FlowLearner.create(blobs(12), [8, 8, 1], {
    ...OPTIONS,
    target: "efm",
    efmExtra: 12,
  });
  try {
    const { x, t, target } = learner.stepPairs(0);
    const exact = learner.exactVelocity(x, t);
    target.forEach((v, i) => assert.ok(Math.abs(v - exact[i]) < 1e-6, `target[${i}]`));
    // The same step's draws again: a pure function of (seed, step).
    assert.deepEqual(learner.stepPairs(0).x, x);
  } finally {
    await learner.release();
  }
});

Deno.test("the compiled step's loss equals tfjs's regression loss of the same U-Net on the same pairs", async () => {
  for (const target of ["velocity", "denoiser", "noise"] as const) {
    const learner = await FlowLearner.create(blobs(16), [8, 8, 1], { ...OPTIONS, target });
    try {
      const weights = learner.weights();
      const { x, t, target: want } = learner.stepPairs(0);
      const loss = await learner.step();
      const expected = tf.tidy(() => {
        const params = new Map(
          paramSpecs(learner.blocks, learner.chw).map((
            s,
          ) => [s.name, tf.tensor(weights.get(s.name)!, [...s.shape])]),
        );
        const y = forwardTimed(learner.blocks, params, tf.tensor(x, [8, 8, 8, 1]), tf.tensor(t));
        return tf.mean(tf.square(tf.sub(y, tf.tensor(want, [8, 8, 8, 1])))).dataSync()[0];
      });
      assert.ok(Math.abs(loss - expected) < 1e-5 * expected, `${target}: ${loss} vs ${expected}`);
    } finally {
      await learner.release();
    }
  }
});

Deno.test("training lowers the regression loss and the estimation error against b*", async () => {
  const learner = await FlowLearner.create(blobs(16), [8, 8, 1], OPTIONS);
  try {
    const rng = new Rng(9, "eval");
    const times = Float32Array.from({ length: 32 }, (_, i) => ((i + 0.5) / 32) * 0.95);
    const images = learner.trainImages();
    const x1 = new Float32Array(32 * 64);
    for (let i = 0; i < 32; i++) x1.set(images.subarray((i % 16) * 64, (i % 16 + 1) * 64), i * 64);
    const { x } = learner.pairs(x1, rng, times, false);
    const exact = learner.exactVelocity(x, times);
    const delta = async () => {
      const v = await learner.velocityAt(x, times);
      return v.reduce((s, vi, i) => s + (vi - exact[i]) ** 2, 0) / v.length;
    };
    const before = await delta();
    const losses: number[] = [];
    for (let s = 0; s < OPTIONS.steps; s++) losses.push(await learner.step());
    const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
    const first = mean(losses.slice(0, 10));
    const last = mean(losses.slice(-10));
    assert.ok(last < 0.6 * first, `loss ${first} -> ${last}`);
    const after = await delta();
    assert.ok(after < 0.6 * before, `delta ${before} -> ${after}`);
  } finally {
    await learner.release();
  }
});

Deno.test("flow.onnx equals the tfjs oracle, runs at any batch size, and declares its contract", async () => {
  const learner = await FlowLearner.create(blobs(8), [8, 8, 1], { ...OPTIONS, ema: 0.9 });
  try {
    for (let s = 0; s < 3; s++) await learner.step();
    const { onnx, contract, error } = await learner.exportModel();
    assert.ok(error < 1e-5, `export vs tfjs: ${error}`);
    assert.deepEqual(contract, {
      inputs: { x: "x", t: "t" },
      output: "out",
      layout: "nchw",
      prediction: "velocity",
      schedule: "linear",
      range: [-1, 1],
      time: { dataAt: 1, scale: 1 },
      shape: [1, 8, 8],
    });
    const session = await createSession(onnx);
    const rng = new Rng(4, "x");
    for (const n of [1, 3]) {
      const x = Float32Array.from({ length: n * 64 }, () => rng.normal());
      const t = Float32Array.from({ length: n }, () => rng.uniform());
      const out = await session.run({
        x: new ort.Tensor("float32", x, [n, 1, 8, 8]),
        t: new ort.Tensor("float32", t, [n]),
      });
      // The export carries the EMA weights, which predict() uses too.
      const want = await learner.predict(x, t);
      (out.out.data as Float32Array).forEach((v, i) =>
        assert.ok(Math.abs(v - want[i]) < 1e-5, `batch ${n} [${i}]`)
      );
    }
    await session.release();
  } finally {
    await learner.release();
  }
});
