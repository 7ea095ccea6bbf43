// The patch mosaic against its definition and theory: with the window covering the image it is
// the exact closed form (as a stage, and with shifts, the exact denoiser of the explicitly shifted
// set); with P = 1 each pixel is a one-dimensional softmax computed by hand; on two training
// images (all black, all white) it generates locally consistent mosaics that are neither
// (Kamb and Ganguli's exponentially many), where the exact closed form returns one of the two.

import assert from "node:assert/strict";
import type { Dataset } from "../../../core/batch.ts";
import { closedForm } from "../../../stages/generate/closed_form.ts";
import { exactDenoise } from "../../../stages/generate/interpolant/field.ts";
import { mosaic, mosaicDenoise, patchCandidates } from "../../../stages/generate/mosaic.ts";
import { makeDataset, subset } from "../../../stages/load/dataset.ts";
import { loadEmbeddedMnist } from "../../../stages/load/mnist.ts";
import { generate, maxAbsDiff, normals, randomPoints } from "./interpolant/_helpers.ts";
import { maxRelativeError } from "../../_shared.ts";

let mnistCache: Dataset | null = null;
const mnist = () => mnistCache ??= subset(loadEmbeddedMnist(), 40, true, 5);

Deno.test("mosaic with a window covering the image is the exact closed form", async () => {
  const sampler = { sampler: "ode", method: "euler", steps: 8, engine: "exact" };
  const want = await generate(sampler, mnist(), 12, 12, 1, closedForm);
  const got = await generate(
    { ...sampler, patch: "schedule", patchStart: 55, patchEnd: 55 },
    mnist(),
    12,
    12,
    1,
    mosaic,
  );
  // Measured: 0 (the same softmax summed in another order, the same float32 samples).
  assert.ok(maxAbsDiff(got.images, want.images) < 1e-6, `${maxAbsDiff(got.images, want.images)}`);
});

Deno.test("mosaic with shifts R and a full window = the exact denoiser of the R-shifted set", () => {
  const g = { h: 5, w: 4, c: 2 };
  const d = 40;
  const points = randomPoints(3, d, "mosaic-shift");
  const x = normals(d, "mosaic-x");
  const shifts = 1;
  const shifted: number[] = [];
  for (let n = 0; n < 3; n++) {
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        for (let i = 0; i < g.h; i++) {
          for (let j = 0; j < g.w; j++) {
            for (let ch = 0; ch < 2; ch++) {
              const [si, sj] = [i + dy, j + dx];
              const inside = si >= 0 && si < g.h && sj >= 0 && sj < g.w;
              shifted.push(inside ? points.y[n * d + (si * g.w + sj) * 2 + ch] : 0);
            }
          }
        }
      }
    }
  }
  const set = { y: Float32Array.from(shifted), n: 27, d };
  for (const [beta, sigma2] of [[0.3, 0.5], [0.9, 0.01]]) {
    const [got] = mosaicDenoise(points, g, shifts, x, 0, beta, sigma2, [9]);
    const { m } = exactDenoise(set, x, 1, beta, sigma2);
    assert.ok(maxRelativeError(got, m) < 1e-12, `beta ${beta}: ${maxRelativeError(got, m)}`);
  }
});

Deno.test("mosaic with P = 1: each pixel's softmax over the training values there, by hand", () => {
  const g = { h: 2, w: 3, c: 1 };
  const points = {
    y: Float32Array.from([0, 1, 0.5, 0.2, 0.9, 0.4, 1, 0, 0.25, 0.8, 0.1, 0.6]),
    n: 2,
    d: 6,
  };
  const x = Float64Array.from([0.3, -0.2, 0.6, 0.1, 0.7, 0.2]);
  const [beta, sigma2] = [0.8, 0.1];
  const [got] = mosaicDenoise(points, g, 0, x, 0, beta, sigma2, [1]);
  for (let p = 0; p < 6; p++) {
    const [y0, y1] = [points.y[p], points.y[6 + p]];
    const w0 = Math.exp(-((x[p] - beta * y0) ** 2) / (2 * sigma2));
    const w1 = Math.exp(-((x[p] - beta * y1) ** 2) / (2 * sigma2));
    assert.ok(Math.abs(got[p] - (w0 * y0 + w1 * y1) / (w0 + w1)) < 1e-15, `pixel ${p}`);
  }
  assert.deepEqual(patchCandidates({ h: 28, w: 28, c: 1 }).at(-1), 55);
});

Deno.test("two training images, black and white: mosaics of both, not copies", async () => {
  const size = 8 * 8;
  const train = makeDataset(
    "black-white",
    Float32Array.from({ length: 2 * size }, (_, k) => (k < size ? 0 : 1)),
    [2, 8, 8, 1],
    Int32Array.from([0, 0]),
  );
  const sampler = { sampler: "ode", method: "euler", steps: 60, conditional: false };
  const count = 40;
  const out = await generate(
    { ...sampler, patch: "schedule", patchStart: 3, patchEnd: 3 },
    train,
    count,
    count,
    0,
    mosaic,
  );
  const exact = await generate({ ...sampler, engine: "exact" }, train, count, count, 0, closedForm);
  let mixed = 0;
  let binary = 0;
  for (let q = 0; q < count; q++) {
    const image = out.images.subarray(q * size, (q + 1) * size);
    let ones = 0;
    for (const v of image) {
      if (Math.min(Math.abs(v), Math.abs(v - 1)) < 0.05) binary++;
      if (v > 0.5) ones++;
    }
    if (ones > 0 && ones < size) mixed++;
    const e = exact.images.subarray(q * size, (q + 1) * size);
    assert.ok(e.every((v) => Math.abs(v - e[0]) < 1e-3), `exact sample ${q} is one training image`);
  }
  // Measured: every pixel binary, 37 of 40 samples mixed.
  assert.ok(binary >= 0.95 * count * size, `${binary} of ${count * size} pixels near 0 or 1`);
  assert.ok(mixed >= count / 2, `${mixed} of ${count} samples mix black and white`);
});

Deno.test("mosaic calibration: P(t) from the candidates, recorded per class and time; same bytes per batching", async () => {
  const params = { sampler: "ode", method: "euler", steps: 4, calibrationImages: 2 };
  const a = await generate(params, mnist(), 10, 10, 3, mosaic);
  const b = await generate(params, mnist(), 10, 3, 3, mosaic);
  assert.deepEqual(new Uint8Array(a.images.buffer), new Uint8Array(b.images.buffer));
  const sizes = a.facts.patchSizes as Record<string, Record<string, number>>;
  const candidates = patchCandidates({ h: 28, w: 28, c: 1 });
  for (const perTime of Object.values(sizes)) {
    assert.deepEqual(Object.keys(perTime), ["0.0000", "0.2500", "0.5000", "0.7500"]);
    for (const p of Object.values(perTime)) assert.ok(candidates.includes(p), `${p}`);
  }
  assert.ok(Object.keys(sizes).length >= 1);
});
