// onnx-flow against the closed form: the closed-form field of a tiny training set, exported as an
// ONNX model of each prediction type (and each layout, time convention, data range and t shape),
// must make onnx-flow reproduce the closed-form stage's samples, ODE and SDE, same seed. The
// conversions (prediction -> denoiser -> velocity and score) are exact algebra; what is left is
// the model's float32 arithmetic.

import assert from "node:assert/strict";
import { makeDataset } from "../../../stages/load/dataset.ts";
import { onnxFlow } from "../../../stages/generate/onnx_flow.ts";
import { flowContract, flowModel } from "./_flow_models.ts";
import type { FlowModelOptions } from "./_flow_models.ts";
import { generate, randomPoints } from "./interpolant/_helpers.ts";

const SHAPE = [2, 2, 3] as const; // [C, H, W]: channels and sides all differ, so layouts matter.
const D = 12;
const N = 6;
const COUNT = 10;
const BATCH = 5;
const SEED = 3;
// Measured: at most 5.4e-7 (the score model on vp, SDE); float32 output rounding is 6e-8.
const TOLERANCE = 2e-6;

const sia = randomPoints(N, D, "onnx-flow points");
const labels = [0, 1, 0, 1, 0, 1];
const dataset = (name: string, images: Float32Array) =>
  makeDataset(name, images, [N, SHAPE[1], SHAPE[2], SHAPE[0]], Int32Array.from(labels));

async function withModel<T>(
  options: Omit<FlowModelOptions, "points" | "shape">,
  range: readonly [number, number],
  body: (path: string) => Promise<T>,
): Promise<T> {
  const [lo, hi] = range;
  const o = { ...options, shape: SHAPE, points: sia.y.map((v) => lo + (hi - lo) * v) };
  const dir = await Deno.makeTempDir({ prefix: "sia-onnx-flow-" });
  try {
    await Deno.writeFile(`${dir}/model.onnx`, flowModel(o));
    await Deno.writeTextFile(`${dir}/model.json`, JSON.stringify(flowContract(o, range)));
    return await body(`${dir}/model.onnx`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

interface Case {
  readonly model: Omit<FlowModelOptions, "points" | "shape">;
  readonly range: readonly [number, number];
  readonly runs: readonly Record<string, unknown>[];
}

const CASES: readonly Case[] = [
  {
    model: {
      prediction: "velocity",
      schedule: "linear",
      layout: "nchw",
      time: { dataAt: 1, scale: 1 },
    },
    range: [0, 1],
    runs: [
      { sampler: "ode", steps: 20 },
      { sampler: "ode", method: "rk4", steps: 8, lastStep: "denoise" },
      { sampler: "sde", steps: 20 },
    ],
  },
  {
    model: {
      prediction: "denoiser",
      schedule: "trig",
      layout: "nhwc",
      time: { dataAt: 0, scale: 1000 },
      tDims: "scalar",
    },
    range: [-1, 1],
    runs: [
      { sampler: "ode", method: "heun", steps: 10 },
      { sampler: "sde", method: "heun-sde", steps: 10, eps: 0.05, epsForm: "linear" },
    ],
  },
  {
    model: {
      prediction: "noise",
      schedule: "vp",
      layout: "nchw",
      time: { dataAt: 0, scale: 1000 },
      tDims: "one",
      batch: 4,
    },
    range: [-1, 1],
    runs: [
      { sampler: "ode", method: "stable", steps: 12 },
      { sampler: "sde", steps: 20, epsForm: "sigma", eps: 0.5, lastStep: "mean" },
    ],
  },
  {
    model: {
      prediction: "score",
      schedule: "vp",
      layout: "nhwc",
      time: { dataAt: 1, scale: 1 },
    },
    range: [0, 1],
    runs: [
      { sampler: "ode", steps: 20, tEnd: 0.95 },
      { sampler: "sde", steps: 20 },
    ],
  },
];

for (const { model, range, runs } of CASES) {
  const name =
    `${model.prediction} (${model.schedule}, ${model.layout}, dataAt ${model.time.dataAt}` +
    `, scale ${model.time.scale}, range [${range}], t ${model.tDims ?? "batch"})`;
  Deno.test(`onnx-flow reproduces the closed form: ${name}`, async () => {
    const [lo, hi] = range;
    const train = dataset("points", sia.y);
    const scaled = dataset("points in the model's range", sia.y.map((v) => lo + (hi - lo) * v));
    await withModel(model, range, async (path) => {
      for (const run of runs) {
        const closed = await generate(
          { ...run, schedule: model.schedule, conditional: false, engine: "exact" },
          scaled,
          COUNT,
          BATCH,
          SEED,
        );
        const flow = await generate({ ...run, model: path }, train, COUNT, BATCH, SEED, onnxFlow);
        let worst = 0;
        let spread = 0;
        for (let j = 0; j < closed.images.length; j++) {
          const expected = (closed.images[j] - lo) / (hi - lo);
          worst = Math.max(worst, Math.abs(flow.images[j] - expected));
          spread = Math.max(spread, Math.abs(expected - sia.y[j % D]));
        }
        assert.ok(
          worst < TOLERANCE,
          `${JSON.stringify(run)}: max |onnx-flow - closed form| ${worst}`,
        );
        // Not vacuous: the samples move away from where they started and differ across samples.
        assert.ok(spread > 0.05, `${JSON.stringify(run)}: samples barely differ from point 0`);
        assert.deepEqual([...flow.labels], new Array(COUNT).fill(-1));
        assert.equal(flow.facts.nfePerSample, closed.facts.nfePerSample);
      }
    });
  });
}

Deno.test("onnx-flow: a conditional model gets the anchor's label and keeps it", async () => {
  const model = {
    prediction: "velocity",
    schedule: "linear",
    layout: "nchw",
    time: { dataAt: 1, scale: 1 },
    labels,
  } as const;
  const train = dataset("points", sia.y);
  await withModel(model, [0, 1], async (path) => {
    for (const sampler of ["ode", "sde"]) {
      const run = { sampler, steps: 20 };
      const closed = await generate(
        { ...run, conditional: true, engine: "exact" },
        train,
        COUNT,
        BATCH,
        SEED,
      );
      const flow = await generate({ ...run, model: path }, train, COUNT, BATCH, SEED, onnxFlow);
      let worst = 0;
      for (let j = 0; j < closed.images.length; j++) {
        worst = Math.max(worst, Math.abs(flow.images[j] - closed.images[j]));
      }
      assert.ok(worst < TOLERANCE, `${sampler}: max |onnx-flow - closed form| ${worst}`);
      assert.deepEqual([...flow.labels], [...closed.labels]);
    }
  });
});

Deno.test("onnx-flow: the contract's prediction is what decides the field", async () => {
  const model = {
    prediction: "velocity",
    schedule: "linear",
    layout: "nchw",
    time: { dataAt: 1, scale: 1 },
  } as const;
  const train = dataset("points", sia.y);
  await withModel(model, [0, 1], async (path) => {
    const run = { sampler: "ode", steps: 20 };
    const right = await generate({ ...run, model: path }, train, COUNT, BATCH, SEED, onnxFlow);
    for (const prediction of ["denoiser", "noise", "score"]) {
      const wrong = await generate(
        { ...run, model: path, prediction, tStart: 0.01 },
        train,
        COUNT,
        BATCH,
        SEED,
        onnxFlow,
      );
      const gap = Math.max(...wrong.images.map((v, j) => Math.abs(v - right.images[j])));
      assert.ok(gap > 0.05, `velocity read as ${prediction}: max gap only ${gap}`);
    }
  });
});

Deno.test("onnx-flow: a noise model on a schedule with beta(0) = 0 starts at tStart 1e-3", async () => {
  const model = {
    prediction: "noise",
    schedule: "linear",
    layout: "nhwc",
    time: { dataAt: 1, scale: 1 },
  } as const;
  const train = dataset("points", sia.y);
  await withModel(model, [0, 1], async (path) => {
    const flow = await generate({ model: path, steps: 50 }, train, COUNT, BATCH, SEED, onnxFlow);
    assert.equal(flow.facts.tStart, 1e-3);
    // Theorem 1 still holds from t = 1e-3: every ODE sample ends on a training point.
    for (let q = 0; q < COUNT; q++) {
      let nearest = Infinity;
      for (let i = 0; i < N; i++) {
        let dist = 0;
        for (let v = 0; v < D; v++) dist += (flow.images[q * D + v] - sia.y[i * D + v]) ** 2;
        nearest = Math.min(nearest, Math.sqrt(dist));
      }
      assert.ok(nearest < 1e-3, `sample ${q} is ${nearest} from the nearest training point`);
    }
    await assert.rejects(
      () => generate({ model: path, tStart: 0 }, train, COUNT, BATCH, SEED, onnxFlow),
      /tStart: a noise model gives the denoiser only through 1 \/ beta\(t\), and beta\(0\) = 0 on linear/,
    );
  });
});
