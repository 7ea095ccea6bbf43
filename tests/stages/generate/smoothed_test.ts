// The smoothed closed form against what it claims: at sigma_s = 0 it is the exact closed form
// (bit for bit with fresh draws, whose running mean of identical values is exact; to float
// rounding with the cached fixed draws), the cached fixed-draw field equals the plain average of
// the exact denoiser at the perturbed queries, and on two training points fixed draws end on the
// barycenters k / M of the segment between them while the exact closed form ends on the points.

import assert from "node:assert/strict";
import { Rng } from "../../../core/rng.ts";
import type { Dataset } from "../../../core/batch.ts";
import { closedForm } from "../../../stages/generate/closed_form.ts";
import { exactDenoise } from "../../../stages/generate/interpolant/field.ts";
import { interpolant } from "../../../stages/generate/interpolant/schedule.ts";
import { smoothed } from "../../../stages/generate/smoothed.ts";
import { fixedSmoothedField } from "../../../stages/generate/interpolant/smoothing.ts";
import { subset } from "../../../stages/load/dataset.ts";
import { loadEmbeddedMnist } from "../../../stages/load/mnist.ts";
import {
  maxAbsDiff,
  nearestTwo,
  normals,
  pointDataset,
  randomPoints,
} from "./interpolant/_helpers.ts";
import { generate } from "./interpolant/_helpers.ts";
import { maxRelativeError } from "../../_shared.ts";

let mnistCache: Dataset | null = null;
const mnist = () => mnistCache ??= subset(loadEmbeddedMnist(), 60, true, 3);

const SAMPLER = { method: "euler", steps: 12, engine: "exact" };

Deno.test("smoothed, fresh draws, sigma_s = 0: the exact closed form bit for bit (ODE and SDE)", async () => {
  for (const sampler of ["ode", "sde"]) {
    const want = await generate({ ...SAMPLER, sampler, method: "auto" }, mnist(), 24, 10, 5);
    const got = await generate(
      { ...SAMPLER, sampler, method: "auto", sigmaS: 0, draws: 3, mode: "fresh" },
      mnist(),
      24,
      10,
      5,
      smoothed,
    );
    assert.deepEqual(new Uint8Array(got.images.buffer), new Uint8Array(want.images.buffer));
    assert.deepEqual(got.labels, want.labels);
  }
});

Deno.test("smoothed, fixed draws, sigma_s = 0: the exact closed form to float rounding", async () => {
  const want = await generate({ ...SAMPLER, sampler: "ode" }, mnist(), 24, 10, 5);
  const got = await generate(
    { ...SAMPLER, sigmaS: 0, draws: 4, mode: "fixed" },
    mnist(),
    24,
    10,
    5,
    smoothed,
  );
  // Measured: 2.8e-17 (a differently summed float64 softmax).
  assert.ok(maxAbsDiff(got.images, want.images) <= 1e-6, `${maxAbsDiff(got.images, want.images)}`);
});

Deno.test("cached fixed-draw field = mean over k of the exact m at x + sigma_s xi_k", async () => {
  const points = randomPoints(30, 5, "smoothed-points", -1, 1);
  const b = 4, draws = 3, sigmaS = 0.3;
  const x = normals(b * 5, "smoothed-x");
  const streams = Array.from({ length: b }, (_, q) => new Rng(1, "t", q));
  const field = fixedSmoothedField(points, sigmaS, draws, streams);
  field.begin!(b);
  // The same draws, independently: begin drew xi_q0 .. xi_q(M-1) from each stream in turn.
  const again = Array.from({ length: b }, (_, q) => new Rng(1, "t", q));
  const perturbed = new Float64Array(b * draws * 5);
  for (let q = 0; q < b; q++) {
    for (let k = 0; k < draws; k++) {
      for (let j = 0; j < 5; j++) {
        perturbed[(q * draws + k) * 5 + j] = x[q * 5 + j] + sigmaS * again[q].normal();
      }
    }
  }
  const interp = interpolant({ schedule: "linear", gamma: "none" });
  for (const t of [0.2, 0.6, 0.95]) {
    const c = interp.at(t);
    const got = (await field.evaluate(c, x, b)).my;
    const { m } = exactDenoise(points, perturbed, b * draws, c.beta, c.sigma2);
    const want = new Float64Array(b * 5);
    for (let q = 0; q < b; q++) {
      for (let k = 0; k < draws; k++) {
        for (let j = 0; j < 5; j++) want[q * 5 + j] += m[(q * draws + k) * 5 + j] / draws;
      }
    }
    const err = maxRelativeError(got, want);
    assert.ok(err <= 1e-12, `t = ${t}: ${err}`);
  }
});

Deno.test("two training points: fixed draws end on barycenters k / M of the segment, the exact field on the points", async () => {
  const train = pointDataset("two", [-1, 0, 1, 0], 2);
  const count = 200;
  const run = (extra: Record<string, unknown>, stage = smoothed) =>
    generate({ sampler: "ode", method: "euler", steps: 200, ...extra }, train, count, 64, 2, stage);
  const exact = await run({}, closedForm);
  const draws = 4;
  const fixed = await run({ sigmaS: 0.8, draws, mode: "fixed" });
  let interior = 0;
  for (let q = 0; q < count; q++) {
    const [u, v] = [fixed.images[2 * q], fixed.images[2 * q + 1]];
    // x(1) = mean of M one-hot winners: (-1)(M - k)/M + (1)(k/M) = 2k/M - 1, on the line v = 0.
    const k = (u + 1) * draws / 2;
    assert.ok(Math.abs(k - Math.round(k)) < 0.02 && Math.abs(v) < 0.02, `sample ${q}: ${u}, ${v}`);
    if (Math.abs(u) < 0.9) interior++;
    assert.ok(Math.abs(Math.abs(exact.images[2 * q]) - 1) < 0.02, `exact ${exact.images[2 * q]}`);
  }
  // Measured: 107 of 200 off the two training points.
  assert.ok(interior >= 40, `${interior} of ${count} samples between the points`);
});

Deno.test("smoothed: same bytes whatever the batching; fixed draws with an empirical base are rejected", async () => {
  const params = { ...SAMPLER, sigmaS: 0.2, draws: 2, mode: "fixed" };
  const a = await generate(params, mnist(), 20, 20, 9, smoothed);
  const b = await generate(params, mnist(), 20, 7, 9, smoothed);
  assert.deepEqual(new Uint8Array(a.images.buffer), new Uint8Array(b.images.buffer));
  const f1 = await generate({ ...params, mode: "fresh" }, mnist(), 20, 20, 9, smoothed);
  const f2 = await generate({ ...params, mode: "fresh" }, mnist(), 20, 6, 9, smoothed);
  assert.deepEqual(new Uint8Array(f1.images.buffer), new Uint8Array(f2.images.buffer));
  await assert.rejects(
    () => generate({ ...params, base: "empirical", gamma: "brownian" }, mnist(), 4, 4, 0, smoothed),
    /generate\.params\.mode: fixed draws run the Gaussian-base field only/,
  );
});

Deno.test("smoothed calibration: sigma_s per class from the candidates; the held-out share stays out of the field", async () => {
  // 6 images per class, half held out: an exact ODE (the only candidate, 0) copies the 3 left in.
  const train = subset(loadEmbeddedMnist(), 60, true, 4);
  const params = {
    ...SAMPLER,
    sampler: "ode",
    calibrate: true,
    sigmaCandidates: "0",
    holdout: 0.5,
    mode: "fresh",
    draws: 1,
  };
  const out = await generate(params, train, 80, 80, 6, smoothed);
  const { nearest, index } = nearestTwo(out.images, train);
  assert.ok(Math.max(...nearest) < 1e-3, "every sample is a training image");
  const copied = new Map<number, Set<number>>();
  index.forEach((i, q) => {
    const label = out.labels[q];
    if (!copied.has(label)) copied.set(label, new Set());
    copied.get(label)!.add(i);
  });
  for (const [label, images] of copied) {
    assert.ok(images.size <= 3, `class ${label}: ${images.size}`);
  }
  const chosen = out.facts.sigmaChosen as Record<string, number>;
  assert.deepEqual(Object.values(chosen), new Array(Object.keys(chosen).length).fill(0));
  // Two candidates: the choice is one of them, recorded per class; bad lists are one line.
  const two = await generate(
    { ...params, sigmaCandidates: "0.5,2", mode: "fixed", draws: 2 },
    train,
    20,
    20,
    6,
    smoothed,
  );
  for (const v of Object.values(two.facts.sigmaChosen as Record<string, number>)) {
    assert.ok(v === 0.5 || v === 2, `${v}`);
  }
  await assert.rejects(
    () => generate({ ...params, sigmaCandidates: "1,x" }, train, 4, 4, 0, smoothed),
    /generate\.params\.sigmaCandidates: expected a comma list of numbers >= 0, got "1,x"/,
  );
});
