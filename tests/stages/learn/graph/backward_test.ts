// Every block's compiled gradient equals tfjs's autodiff (tf.grads, cpu backend) on random inputs
// to 1e-4 relative, for strides 1 and 2, batch 1 and many, and whole encoders.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { createSession, ort } from "../../../../core/onnx.ts";
import { Rng } from "../../../../core/rng.ts";
import { initParams } from "../../../../stages/learn/blocks/init.ts";
import {
  predictionHead,
  projectionHead,
  smallCnn,
  UNET_PRESETS,
  velocityUnet,
} from "../../../../stages/learn/blocks/model.ts";
import type { ActShape, Block } from "../../../../stages/learn/blocks/model.ts";
import { forward, forwardTimed } from "../../../../stages/learn/blocks/tfjs.ts";
import { gradientModel } from "../../../../stages/learn/graph/gradient.ts";
import { maxRelativeError } from "../../../_shared.ts";

await tf.setBackend("cpu");

function random(length: number, key: string): Float32Array {
  const rng = new Rng(11, key);
  return Float32Array.from({ length }, () => rng.normal());
}

// A gradient that is exactly zero in theory (a bias before batch norm) is float noise on both
// sides: below 1e-5 it is compared absolutely.
const relError = (got: Float32Array, want: ArrayLike<number>) => maxRelativeError(got, want, 1e-5);

/** Largest relative gradient error over dx and every trainable parameter. */
async function check(
  blocks: Block[],
  input: ActShape,
  batch: number,
): Promise<Record<string, number>> {
  const { model, specs, outputShape } = gradientModel(blocks, input, batch);
  const params = initParams(specs, 1);
  // Non-trivial batch-norm affine parameters, so their gradients are not degenerate.
  for (const [name, v] of params) {
    if (name.endsWith(".scale")) v.set(random(v.length, name).map((z) => 1 + 0.2 * z));
    if (name.endsWith(".shift")) v.set(random(v.length, name).map((z) => 0.1 * z));
  }
  // Zero-initialised convs (a U-Net's residual outputs) would zero the gradients behind them.
  for (const s of specs.filter((s) => s.init === "zero" && s.trainable)) {
    params.get(s.name)!.set(random(params.get(s.name)!.length, s.name).map((z) => 0.1 * z));
  }
  const xShape = [batch, ...input];
  const x = random(xShape.reduce((a, b) => a * b, 1), "x");
  const dy = random(outputShape.reduce((a, b) => a * b, 1), "dy");
  const session = await createSession(model);
  const feeds: Record<string, ort.Tensor> = {
    x: new ort.Tensor("float32", x, xShape),
    dy: new ort.Tensor("float32", dy, outputShape),
  };
  // Time-conditioned models: t spread over [0, 1].
  const timed = blocks.some((b) => b.kind === "embed");
  const t = Float32Array.from({ length: batch }, (_, i) => (i + 0.5) / batch);
  if (timed) feeds.t = new ort.Tensor("float32", t, [batch]);
  for (const s of specs) {
    feeds[s.name] = new ort.Tensor("float32", params.get(s.name)!, [...s.shape]);
  }
  const out = await session.run(feeds);
  await session.release();

  const trainable = specs.filter((s) => s.trainable);
  const errors: Record<string, number> = {};
  tf.tidy(() => {
    const fixed = new Map(
      specs.filter((s) => !s.trainable).map((
        s,
      ) => [s.name, tf.tensor(params.get(s.name)!, [...s.shape])]),
    );
    const f = (xt: tf.Tensor, ...ps: tf.Tensor[]) => {
      const all = new Map<string, tf.Tensor>(fixed);
      trainable.forEach((s, i) => all.set(s.name, ps[i]));
      const y = timed
        ? forwardTimed(blocks, all, xt, tf.tensor(t, [batch]))
        : forward(blocks, all, xt, true);
      return tf.sum(tf.mul(y, tf.tensor(dy, outputShape)));
    };
    const grads = tf.grads(f)([
      tf.tensor(x, xShape),
      ...trainable.map((s) => tf.tensor(params.get(s.name)!, [...s.shape])),
    ]);
    errors.dx = relError(out.dx.data as Float32Array, grads[0].dataSync());
    trainable.forEach((
      s,
      i,
    ) => (errors[s.name] = relError(
      out[`grad.${s.name}`].data as Float32Array,
      grads[i + 1].dataSync(),
    )));
  });
  return errors;
}

function assertSmall(errors: Record<string, number>, tol = 1e-4) {
  for (const [name, e] of Object.entries(errors)) {
    assert.ok(e < tol, `${name}: relative error ${e}`);
  }
}

const conv = (
  out: number,
  kernel: number,
  stride: number,
  bias = false,
  padding: "same" | "valid" = "same",
): Block => ({
  kind: "conv",
  out,
  kernel,
  stride,
  bias,
  padding,
});

for (const batch of [1, 5]) {
  for (const stride of [1, 2]) {
    for (const padding of ["same", "valid"] as const) {
      for (const [h, w] of [[6, 6], [7, 5]]) {
        Deno.test(`conv 3x3 stride ${stride}, ${padding}, ${h}x${w}, batch ${batch}: gradients = tf.grads`, async () => {
          assertSmall(await check([conv(4, 3, stride, true, padding)], [h, w, 3], batch));
        });
      }
    }
  }
}

Deno.test("conv 1x1 stride 2 (a ResNet shortcut): gradients = tf.grads", async () => {
  assertSmall(await check([conv(6, 1, 2)], [8, 8, 4], 3));
});

Deno.test("batch norm on images and on vectors: gradients = tf.grads", async () => {
  assertSmall(await check([conv(4, 3, 1), { kind: "batchnorm" }], [5, 5, 2], 4));
  assertSmall(await check([{ kind: "dense", out: 6, bias: true }, { kind: "batchnorm" }], [5], 7));
});

Deno.test("relu, max-pool, global average pool: gradients = tf.grads", async () => {
  assertSmall(
    await check([conv(3, 3, 1), { kind: "relu" }, { kind: "maxpool", size: 2 }, { kind: "gap" }], [
      8,
      6,
      2,
    ], 3),
  );
});

Deno.test("dense, relu, dense, L2 normalisation (a projection head): gradients = tf.grads", async () => {
  assertSmall(await check([...projectionHead(16, 8), { kind: "l2norm" }], [12], 6));
});

Deno.test("residual block with a strided 1x1 shortcut: gradients = tf.grads", async () => {
  const block: Block = {
    kind: "residual",
    body: [conv(4, 3, 2), { kind: "batchnorm" }, { kind: "relu" }, conv(4, 3, 1), {
      kind: "batchnorm",
    }],
    shortcut: [conv(4, 1, 2), { kind: "batchnorm" }],
  };
  assertSmall(await check([block, { kind: "relu" }, { kind: "gap" }], [6, 6, 2], 3));
});

Deno.test("the whole small CNN + projection head: gradients = tf.grads", async () => {
  assertSmall(await check([...smallCnn(), ...projectionHead(128, 128)], [28, 28, 1], 4));
});

Deno.test("finite differences agree with the compiled gradients (float32, tiny shapes)", async () => {
  // onnxruntime has no float64 Conv or ConvTranspose kernel (its CPU provider registers them for
  // float only), so the check runs in float32: central differences with h = 1e-2 leave O(h^2)
  // truncation and ~1e-5 rounding, far below the O(1) error a wrong formula makes.
  const blocks: Block[] = [
    conv(3, 3, 2, true),
    { kind: "batchnorm" },
    { kind: "relu" },
    { kind: "maxpool", size: 2 },
    { kind: "gap" },
    { kind: "dense", out: 4, bias: true },
    { kind: "l2norm" },
  ];
  const input = [6, 6, 2];
  const batch = 3;
  const { model, specs, outputShape } = gradientModel(blocks, input, batch);
  const params = initParams(specs, 7);
  const x = random(batch * 72, "fd-x");
  const dy = random(outputShape.reduce((a, b) => a * b, 1), "fd-dy");
  const session = await createSession(model);
  const run = async () => {
    const feeds: Record<string, ort.Tensor> = {
      x: new ort.Tensor("float32", x, [batch, ...input]),
      dy: new ort.Tensor("float32", dy, outputShape),
    };
    for (const s of specs) {
      feeds[s.name] = new ort.Tensor("float32", params.get(s.name)!, [...s.shape]);
    }
    return await session.run(feeds);
  };
  const loss = async () => {
    const y = (await run()).y.data as Float32Array;
    return y.reduce((s, v, i) => s + v * dy[i], 0);
  };
  const analytic = await run();
  const h = 1e-2;
  for (const s of specs.filter((s) => s.trainable)) {
    const values = params.get(s.name)!;
    const grad = analytic[`grad.${s.name}`].data as Float32Array;
    const scale = Math.max(...grad.map(Math.abs));
    for (let i = 0; i < Math.min(values.length, 6); i++) {
      const saved = values[i];
      values[i] = saved + h;
      const up = await loss();
      values[i] = saved - h;
      const down = await loss();
      values[i] = saved;
      const fd = (up - down) / (2 * h);
      assert.ok(
        Math.abs(fd - grad[i]) < 2e-2 * scale + 1e-4,
        `${s.name}[${i}]: fd ${fd} vs ${grad[i]}`,
      );
    }
  }
  await session.release();
});

Deno.test("SimSiam prediction head (bottleneck MLP with batch norm): gradients = tf.grads", async () => {
  assertSmall(await check(predictionHead(4, 16), [16], 8));
});

// The velocity U-Net's blocks (issue: trained flow), each alone and then the whole network.
Deno.test("group norm (4 groups of 2 channels): gradients = tf.grads", async () => {
  assertSmall(await check([conv(8, 3, 1, true), { kind: "groupnorm", groups: 4 }], [5, 5, 2], 3));
});

Deno.test("SiLU and nearest 2x upsampling: gradients = tf.grads", async () => {
  assertSmall(
    await check([conv(4, 3, 1, true), { kind: "silu" }, { kind: "upsample" }], [3, 4, 2], 2),
  );
});

Deno.test("a concatenated skip around a stride-2 conv and an upsampling: gradients = tf.grads", async () => {
  const blocks: Block[] = [
    conv(4, 3, 1, true),
    { kind: "push" },
    conv(3, 3, 2, true),
    { kind: "upsample" },
    { kind: "concat", skip: 4 },
    conv(2, 3, 1, true),
  ];
  assertSmall(await check(blocks, [6, 6, 2], 3));
});

Deno.test("time embedding (Fourier features, dense-SiLU-dense) added per sample: gradients = tf.grads", async () => {
  const blocks: Block[] = [
    {
      kind: "embed",
      features: 8,
      body: [{ kind: "dense", out: 6, bias: true }, { kind: "silu" }, {
        kind: "dense",
        out: 6,
        bias: true,
      }],
    },
    conv(4, 3, 1, true),
    { kind: "cond", embed: 6 },
    { kind: "silu" },
    { kind: "cond", embed: 6 },
  ];
  assertSmall(await check(blocks, [5, 5, 2], 4));
});

Deno.test("the tiny velocity U-Net at 8x8x1: gradients = tf.grads", async () => {
  assertSmall(await check(velocityUnet(1, UNET_PRESETS.tiny), [8, 8, 1], 2));
});
