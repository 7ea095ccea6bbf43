// The oneDNN engine (encoder on oneDNN, head on onnxruntime) takes the same steps as the one-graph
// onnxruntime step: every parameter, optimizer state and running statistic after three steps
// equal to 1e-4 relative, for SGD and Adam; it is deterministic (same seed, same bytes); encoders
// it does not cover, and SIA_ENGINE=onnxruntime, stay on the one-graph step, and the trainer
// says which engine runs. (train_step_test.ts checks the engine Trainer picks against tfjs.)

import assert from "node:assert/strict";
import { openDnnl } from "../../../../core/dnnl.ts";
import { Rng } from "../../../../core/rng.ts";
import type { Block } from "../../../../stages/learn/blocks/model.ts";
import { projectionHead } from "../../../../stages/learn/blocks/model.ts";
import { dnnlEncoderLength } from "../../../../stages/learn/graph/dnnl_step.ts";
import type { Optimizer } from "../../../../stages/learn/graph/optimizers.ts";
import type { StepSpec } from "../../../../stages/learn/graph/train_step.ts";
import { trainStep } from "../../../../stages/learn/graph/train_step.ts";
import { Trainer } from "../../../../stages/learn/graph/trainer.ts";
import { maxRelativeError } from "../../../_shared.ts";

const dnnl = openDnnl();
const conv = (out: number, stride = 1, bias = false): Block => ({
  kind: "conv",
  out,
  kernel: 3,
  stride,
  bias,
});
const bn: Block = { kind: "batchnorm" };
const relu: Block = { kind: "relu" };
const ENCODER: Block[] = [
  conv(8),
  bn,
  relu,
  { kind: "maxpool", size: 2 },
  conv(16, 2),
  bn,
  relu,
  { kind: "gap" },
];

function spec(optimizer: Optimizer, blocks = ENCODER, clip = 0): StepSpec {
  return {
    blocks: [...blocks, ...projectionHead(16, 8), { kind: "l2norm" }],
    input: [12, 12, 2],
    batch: 6,
    loss: { kind: "ntxent", tau: 0.5 },
    optimizer,
    clip,
  };
}

function views(seed: number): Float32Array {
  const rng = new Rng(seed, "views");
  return Float32Array.from({ length: 12 * 12 * 12 * 2 }, () => rng.uniform());
}

async function run(s: StepSpec, engine: "auto" | "onnxruntime", steps = 3) {
  const graph = trainStep(s);
  const trainer = await Trainer.create(graph, 4, [12, 12, 12, 2], undefined, engine);
  // Adam from zero state divides a near-zero gradient by its own RMS, which turns float rounding
  // into O(1) changes; a running RMS already there (as train_step_test.ts seeds it) keeps the
  // update well-conditioned.
  const rng = new Rng(9, "state");
  for (const { name } of graph.state) {
    const v = trainer.value(name);
    for (let i = 0; i < v.length; i++) {
      v[i] = name.endsWith("adam_v") ? 1e-4 * rng.uniform() : 1e-3 * rng.normal();
    }
  }
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    losses.push(await trainer.step(views(i), { lr: 0.05, adam_c1: 1.5, adam_c2: 1.2 }));
  }
  const values = new Map(trainer.names().map((n) => [n, trainer.value(n).slice()]));
  const name = trainer.engine;
  await trainer.release();
  return { losses, values, engine: name };
}

const optimizers: Optimizer[] = [
  { kind: "sgd", momentum: 0.9, weightDecay: 1e-4 },
  { kind: "adam", beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-4 },
];
for (const optimizer of optimizers) {
  Deno.test({
    name: `oneDNN engine = one-graph onnxruntime step (${optimizer.kind})`,
    ignore: dnnl === null,
    fn: async () => {
      const ours = await run(spec(optimizer), "auto");
      const one = await run(spec(optimizer), "onnxruntime");
      assert.match(ours.engine, /^oneDNN 2\./);
      assert.equal(one.engine, "onnxruntime");
      ours.losses.forEach((l, i) => assert.ok(Math.abs(l - one.losses[i]) < 1e-5, `loss ${i}`));
      for (const [name, v] of one.values) {
        const e = maxRelativeError(ours.values.get(name)!, v, 1e-5);
        assert.ok(e < 1e-4, `${name}: relative error ${e}`);
      }
    },
  });
}

Deno.test({
  name: "oneDNN engine = one-graph step on residual blocks (identity and strided 1x1 shortcuts)",
  ignore: dnnl === null,
  fn: async () => {
    const body = (c: number, stride: number): Block[] => [conv(c, stride), bn, relu, conv(c), bn];
    const shortcut: Block = { kind: "conv", out: 12, kernel: 1, stride: 2, bias: false };
    const blocks: Block[] = [
      conv(8),
      bn,
      relu,
      { kind: "residual", body: body(8, 1), shortcut: [] },
      relu,
      { kind: "residual", body: body(12, 2), shortcut: [shortcut, bn] },
      relu,
      { kind: "gap" },
    ];
    const sgd: Optimizer = { kind: "sgd", momentum: 0.9, weightDecay: 1e-4 };
    assert.equal(dnnlEncoderLength(spec(sgd, blocks)), blocks.length);
    const ours = await run(spec(sgd, blocks), "auto");
    const one = await run(spec(sgd, blocks), "onnxruntime");
    ours.losses.forEach((l, i) => assert.ok(Math.abs(l - one.losses[i]) < 1e-5, `loss ${i}`));
    for (const [name, v] of one.values) {
      const e = maxRelativeError(ours.values.get(name)!, v, 1e-5);
      assert.ok(e < 1e-4, `${name}: relative error ${e}`);
    }
  },
});

Deno.test({
  name: "oneDNN engine: same seed, same bytes",
  ignore: dnnl === null,
  fn: async () => {
    const sgd: Optimizer = { kind: "sgd", momentum: 0.9, weightDecay: 1e-4 };
    const [a, b] = [await run(spec(sgd), "auto", 2), await run(spec(sgd), "auto", 2)];
    for (const [name, v] of a.values) assert.deepEqual(b.values.get(name), v, name);
  },
});

Deno.test({
  name: "oneDNN engine: a NaN in the input gives a NaN loss, as the one-graph step does",
  ignore: dnnl === null,
  fn: async () => {
    const s = spec({ kind: "sgd", momentum: 0.9, weightDecay: 0 });
    for (const engine of ["auto", "onnxruntime"] as const) {
      const trainer = await Trainer.create(trainStep(s), 4, [12, 12, 12, 2], undefined, engine);
      const x = views(0);
      x[17] = NaN;
      assert.ok(Number.isNaN(await trainer.step(x, { lr: 0.05 })), trainer.engine);
      await trainer.release();
    }
  },
});

Deno.test("encoders oneDNN does not cover stay on the one-graph step", () => {
  const sgd: Optimizer = { kind: "sgd", momentum: 0.9, weightDecay: 0 };
  assert.equal(dnnlEncoderLength(spec(sgd)), ENCODER.length);
  assert.equal(dnnlEncoderLength(spec(sgd, ENCODER, 1)), 0, "clipping");
  assert.equal(dnnlEncoderLength(spec(sgd, [conv(8, 1, true), ...ENCODER.slice(1)])), 0, "bias");
  assert.equal(dnnlEncoderLength(spec(sgd, [conv(8), relu, { kind: "gap" }])), 0, "bare relu");
  assert.equal(
    dnnlEncoderLength(
      spec(sgd, [conv(8), bn, relu, { kind: "maxpool", size: 5 }, { kind: "gap" }]),
    ),
    0,
    "12 is no multiple of 5",
  );
});

Deno.test("SIA_ENGINE=onnxruntime: the trainer runs the one-graph step and says so", async () => {
  const module = (p: string) => new URL(`../../../../stages/learn/graph/${p}`, import.meta.url);
  const code = `import { trainStep } from "${module("train_step.ts")}";
import { Trainer } from "${module("trainer.ts")}";
const s = JSON.parse(Deno.args[0]);
const t = await Trainer.create(trainStep(s), 0, [12, 12, 12, 2]);
console.log(t.engine);`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code, JSON.stringify(spec({ kind: "sgd", momentum: 0.9, weightDecay: 0 }))],
    env: { SIA_ENGINE: "onnxruntime" },
  }).output();
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "onnxruntime");
  assert.match(new TextDecoder().decode(out.stderr), /^training engine: onnxruntime$/m);
});
