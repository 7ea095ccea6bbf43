// The closed-form generator stage end to end, against the paper's claims: Theorem 1 (the ODE
// reproduces training images), Theorem 2 (the SDE gives training images plus Gaussian noise of a
// predictable size), Corollary 4 (both ends empirical lands on the target set), and the stage's
// contract: byte-identical output however the anchors are batched, class-conditional output, and
// one-line SiaErrors for option combinations that make no sense. Fixed seeds throughout.

import assert from "node:assert/strict";
import { imageSize } from "../../../core/batch.ts";
import type { Dataset } from "../../../core/batch.ts";
import { SiaError } from "../../../core/errors.ts";
import { resolveSection } from "../../../core/schema.ts";
import { closedForm } from "../../../stages/generate/closed_form.ts";
import { subset } from "../../../stages/load/dataset.ts";
import { loadEmbeddedMnist } from "../../../stages/load/mnist.ts";
import { closeness } from "../../../stages/sink/summary.ts";
import {
  circle,
  generate,
  mean,
  median,
  nearestTwo,
  pointDataset,
} from "./interpolant/_helpers.ts";
import type { Generated } from "./interpolant/_helpers.ts";

let mnistCache: Dataset | null = null;
function mnist(): Dataset {
  return mnistCache ??= loadEmbeddedMnist();
}

/** Asserts bit-identical float32 arrays (compared as 32-bit words; the message names the first
 * difference, and a failure stays cheap to report for large arrays). */
function assertSameBits(a: Float32Array, b: Float32Array, what: string) {
  assert.equal(a.length, b.length, `${what}: lengths`);
  const wa = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const wb = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let count = 0;
  let first = -1;
  let worst = 0;
  for (let k = 0; k < wa.length; k++) {
    if (wa[k] !== wb[k]) {
      if (first < 0) first = k;
      count++;
      worst = Math.max(worst, Math.abs(a[k] - b[k]));
    }
  }
  assert.ok(
    count === 0,
    `${what}: ${count} values differ (first at ${first}: ${a[first]} vs ${b[first]}; max ${worst})`,
  );
}

Deno.test("Theorem 1: ODE generation from 1,000 MNIST images reproduces training images", async () => {
  // Linear path, Euler, 100 steps: the last step from t = 0.99 lands on m(0.99, x), and with
  // sigma = 0.01 against MNIST's nearest-neighbour distances of ~5 the posterior is one-hot.
  const train = subset(mnist(), 1000, true, 1);
  const { images, facts } = await generate(
    { sampler: "ode", method: "euler", steps: 100, engine: "onnx", conditional: false },
    train,
    1000,
    500,
    1,
  );
  assert.equal(facts.nfePerSample, 100);
  assert.equal(facts.engine, "onnx");
  const c = closeness(images, train);
  assert.ok(c.memorizedFraction >= 0.999, `memorized ${c.memorizedFraction}`);
  const { nearest } = nearestTwo(images, train);
  // Measured: max 1.2e-17 (float32 pixels equal to the training image's to the last bit).
  const worst = Math.max(...nearest);
  assert.ok(worst <= 1e-3, `max distance to the nearest training image ${worst}`);
  // And the samples are not all the same few images.
  const distinct = new Set(nearestTwo(images, train).index).size;
  assert.ok(distinct >= 500, `${distinct} distinct training images reproduced`);
});

/** 200 samples from 200 MNIST images per ODE method, computed once for the tests below. */
const methodRuns = new Map<string, Promise<{ train: Dataset; out: Generated }>>();
function methodRun(method: string, schedule = "linear") {
  const key = `${method} ${schedule}`;
  let run = methodRuns.get(key);
  if (!run) {
    const train = subset(mnist(), 200, true, 2);
    run = generate(
      { sampler: "ode", method, schedule, steps: 100, engine: "onnx", conditional: false },
      train,
      200,
      200,
      2,
    ).then((out) => ({ train, out }));
    methodRuns.set(key, run);
  }
  return run;
}

Deno.test("Theorem 1: heun, rk4 and stable ODE samples are memorized (ratio test)", async () => {
  for (const method of ["heun", "rk4", "stable"]) {
    const { train, out } = await methodRun(method);
    const c = closeness(out.images, train);
    assert.ok(c.memorizedFraction >= 0.999, `${method}: memorized ${c.memorizedFraction}`);
  }
});

Deno.test({
  name: "Theorem 1: heun, rk4 and stable (linear, trig, vp) land within 1e-3 of training images",
  fn: async () => {
    // Measured with the bug: 0.133 for every one of them (h beta m added by the last step).
    const cases = [
      ["heun", "linear"],
      ["rk4", "linear"],
      ["stable", "linear"],
      ["stable", "trig"],
      ["stable", "vp"],
    ];
    for (const [method, schedule] of cases) {
      const { train, out } = await methodRun(method, schedule);
      const worst = Math.max(...nearestTwo(out.images, train).nearest);
      assert.ok(worst <= 1e-3, `${method} ${schedule}: max distance ${worst}`);
    }
  },
});

/**
 * Per-coordinate variance of e = x - t y under Euler-Maruyama once a sample has committed to y
 * (linear path, gamma none, eps constant): e_{k+1} = a_k e_k + sqrt(2 eps h) xi with
 * a_k = 1 - h / sigma_k - h eps / sigma_k^2, sigma_k = 1 - t_k, from V_0 = 1. `mean` drops the
 * last noise term (lastStep = "mean").
 */
function predictedSpread(eps: number, steps: number, d: number, lastMean = false): number {
  const h = 1 / steps;
  let v = 1;
  for (let k = 0; k < steps; k++) {
    const s = 1 - k * h;
    const a = 1 - h / s - (h * eps) / (s * s);
    v = v * a * a + (lastMean && k === steps - 1 ? 0 : 2 * eps * h);
  }
  // E|e| for e ~ N(0, V I_d) is sqrt(V) E[chi_d] ~ sqrt(V (d - 1/2)).
  return Math.sqrt(v * (d - 0.5));
}

Deno.test("Theorem 2: SDE samples are training images plus noise of the predicted size", async () => {
  // Class-conditional MNIST (500 training images, 64 samples). Once committed, the distance to
  // the nearest training image is sqrt(V_K) chi_d, whose relative spread is 1 / sqrt(2 d) = 2.5 %
  // per sample: 64 samples pin the mean and median to ~0.3 % (standard error), and the
  // recursion is exact for the discrete scheme. The claim is "within 10 %"; asserted at 3 %
  // (~9 standard errors). Measured: 0.5840 median vs 0.5817 predicted (the lead's 8,000-image
  // run: 0.5822 vs 0.5817), 0.4273 vs 0.4262 (mean last step), 0.3199 vs 0.3200 (eps 0.003).
  const train = subset(mnist(), 500, true, 3);
  const d = imageSize(train.shape);
  const cases: [number, number, "none" | "mean", number][] = [
    [0.01, 100, "none", 0.99],
    [0.01, 100, "mean", 0.99],
    [0.003, 50, "none", 0.99],
  ];
  for (const [eps, steps, lastStep, memorized] of cases) {
    const { images } = await generate(
      { sampler: "sde", method: "em", eps, steps, lastStep, engine: "onnx" },
      train,
      64,
      64,
      5,
    );
    const { nearest } = nearestTwo(images, train);
    const predicted = predictedSpread(eps, steps, d, lastStep === "mean");
    const med = median(nearest);
    const avg = mean(nearest);
    console.log(
      `eps ${eps}, ${steps} steps, last ${lastStep}: median ${med.toFixed(4)}, mean ${
        avg.toFixed(4)
      }, predicted ${predicted.toFixed(4)}`,
    );
    assert.ok(Math.abs(med / predicted - 1) <= 0.03, `median ${med} vs predicted ${predicted}`);
    assert.ok(Math.abs(avg / predicted - 1) <= 0.03, `mean ${avg} vs predicted ${predicted}`);
    const c = closeness(images, train);
    assert.ok(c.memorizedFraction >= memorized, `memorized ${c.memorizedFraction}`);
  }
  // The prediction's own shape: with h = eps the last step's contraction a = -eps / h = -1, so
  // "mean" keeps V_{K-1} and "none" adds 2 eps h on top.
  const none = predictedSpread(0.01, 100, d);
  const last = predictedSpread(0.01, 100, d, true);
  assert.ok(Math.abs(none ** 2 - last ** 2 - 2 * 0.01 * 0.01 * (d - 0.5)) <= 1e-12);
});

Deno.test("Theorem 2: lastStep denoise returns exact training images", async () => {
  const train = subset(mnist(), 500, true, 3);
  const { images } = await generate(
    { sampler: "sde", eps: 0.01, steps: 100, lastStep: "denoise", engine: "onnx" },
    train,
    64,
    64,
    5,
  );
  const worst = Math.max(...nearestTwo(images, train).nearest);
  assert.ok(worst <= 1e-3, `max distance ${worst}`);
});

Deno.test("class-conditional: every sample is nearest to a training image of its own label", async () => {
  const train = subset(mnist(), 500, true, 4);
  for (const sampler of ["ode", "sde"]) {
    const out = await generate({ sampler, steps: 50, engine: "onnx" }, train, 100, 32, 6);
    const { index } = nearestTwo(out.images, train);
    const seen = new Set<number>();
    for (let q = 0; q < 100; q++) {
      assert.ok(out.labels[q] >= 0 && out.labels[q] <= 9);
      assert.equal(train.labels[index[q]], out.labels[q], `${sampler} sample ${q}`);
      seen.add(out.labels[q]);
    }
    assert.ok(seen.size >= 8, `labels seen: ${[...seen]}`);
  }
  // Unconditional output is unlabeled.
  const out = await generate({ conditional: false, steps: 5 }, train, 4, 4, 6);
  assert.deepEqual(Array.from(out.labels), [-1, -1, -1, -1]);
});

Deno.test("Corollary 4: both ends empirical lands on the target set", async () => {
  // Five target points on a circle of radius 3 (separation 3.53), 16 Gaussian base points,
  // brownian gamma, integrated over [delta, 1 - delta] with delta = 0.01. The exact flow carries
  // rho_delta to rho_{1 - delta} = mean of N(delta a_k + (1 - delta) y_i, gamma^2 I), with
  // gamma(1 - delta) = sqrt(delta (1 - delta)) = 0.0995: a sample ends at
  // |delta (a_k - y_i) + gamma z| from its target, E ~ 0.125 in d = 2. The bound below is
  // delta max|a_k - y_i| + 5 gamma (chi_2 exceeds 5 with probability e^-12.5).
  const target = pointDataset("five points", circle(5, 3), 2);
  const delta = 0.01;
  const gamma = Math.sqrt(delta * (1 - delta));
  for (const method of ["euler", "heun"]) {
    const { images } = await generate(
      {
        base: "empirical",
        gamma: "brownian",
        baseCount: 16,
        delta,
        method,
        steps: 400,
        conditional: false,
      },
      target,
      200,
      200,
      4,
    );
    const { nearest } = nearestTwo(images, target);
    // |a_k| <= 4 for 16 standard normal draws in d = 2 (P(|a| > 4) = e^-8 each), |y_i| = 3.
    const bound = delta * 7 + 5 * gamma;
    for (const x of nearest) assert.ok(x <= bound, `${method}: distance ${x} > ${bound}`);
    // The distance distribution matches the predicted marginal within 10 % (measured: euler
    // 0.130 and heun 0.124 against E|delta (a - y) + gamma z| ~ 0.125, Monte Carlo below).
    const c = closeness(images, target);
    assert.ok(c.memorizedFraction >= 0.99, `${method}: memorized ${c.memorizedFraction}`);
    const predicted = predictedBothEnds(target, delta, gamma);
    const avg = mean(nearest);
    assert.ok(Math.abs(avg / predicted - 1) <= 0.1, `${method}: mean ${avg} vs ${predicted}`);
  }
});

/** E min_j |delta a + (1 - delta) y_i + gamma z - y_j| over a ~ N(0, I), i uniform, z ~ N(0, I). */
function predictedBothEnds(target: Dataset, delta: number, gamma: number): number {
  // Seeded Monte Carlo with 20,000 draws: standard error ~0.4 % of the mean.
  const d = imageSize(target.shape);
  const n = target.shape[0];
  let sum = 0;
  const draws = 20000;
  let state = 12345;
  const uniform = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state + 0.5) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  for (let k = 0; k < draws; k++) {
    const i = Math.floor(uniform() * n);
    const x = Array.from(
      { length: d },
      (_, v) => delta * normal() + (1 - delta) * target.images[i * d + v] + gamma * normal(),
    );
    let best = Infinity;
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let v = 0; v < d; v++) s += (x[v] - target.images[j * d + v]) ** 2;
      best = Math.min(best, s);
    }
    sum += Math.sqrt(best);
  }
  return sum / draws;
}

Deno.test("determinism: same seed, same bytes for any batch size; another seed differs (exact engine)", async () => {
  const train = subset(mnist(), 100, true, 8);
  for (const sampler of ["ode", "sde"]) {
    for (const conditional of [true, false]) {
      const params = { sampler, conditional, steps: 10, engine: "exact" };
      const one = await generate(params, train, 64, 1, 3);
      const all = await generate(params, train, 64, 64, 3);
      const seven = await generate(params, train, 64, 7, 3);
      assert.equal(one.batches, 64);
      assert.equal(seven.batches, 10);
      const name = `${sampler} conditional=${conditional}`;
      assertSameBits(one.images, all.images, `${name}, batches of 1 vs 64`);
      assertSameBits(seven.images, all.images, `${name}, batches of 7 vs 64`);
      assert.deepEqual(one.labels, all.labels, name);
      assert.deepEqual(Array.from(all.ids), Array.from({ length: 64 }, (_, i) => i), name);
      const other = await generate(params, train, 64, 64, 4);
      let differing = 0;
      for (let q = 0; q < 64; q++) {
        const a = all.images.subarray(q * 784, (q + 1) * 784);
        const b = other.images.subarray(q * 784, (q + 1) * 784);
        if (a.some((v, j) => v !== b[j])) differing++;
      }
      // ODE samples land on training images, so two seeds can pick the same image for a few.
      assert.ok(differing >= 48, `${name}: only ${differing} of 64 samples differ across seeds`);
    }
  }
});

Deno.test({
  name: "determinism: same seed, same bytes for any batch size (onnx engine)",
  fn: async () => {
    const train = subset(mnist(), 300, true, 9);
    for (const sampler of ["ode", "sde"]) {
      const params = { sampler, steps: 20, engine: "onnx" };
      const one = await generate(params, train, 64, 1, 3);
      const all = await generate(params, train, 64, 64, 3);
      assertSameBits(one.images, all.images, `${sampler}, batches of 1 vs 64`);
    }
  },
});

Deno.test("bad options: SiaErrors that name the key", () => {
  const train = pointDataset("five points", circle(5, 3), 2);
  const create = (params: Record<string, unknown>) =>
    closedForm.create(resolveSection(closedForm.params, params, "generate.params."), {
      seed: 1,
      train,
      report: () => {},
    });
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ sampler: "ode", eps: 0.1 }, /^(generate\.params\.)?eps: .*sampler=sde only/],
    [
      { sampler: "ode", method: "em" },
      /^(generate\.params\.)?method: em is an SDE method; sampler is ode/,
    ],
    [
      { sampler: "ode", method: "heun-sde" },
      /^(generate\.params\.)?method: heun-sde is an SDE method/,
    ],
    [
      { sampler: "sde", method: "rk4" },
      /^(generate\.params\.)?method: rk4 is an ODE method; sampler is sde/,
    ],
    [{ base: "empirical" }, /^(generate\.params\.)?gamma: .*needs latent noise gamma > 0/],
    [
      { base: "empirical", gamma: "brownian", engine: "onnx" },
      /^(generate\.params\.)?engine: onnx .*Gaussian-base/,
    ],
    [
      { sampler: "ode", lastStep: "mean" },
      /^(generate\.params\.)?lastStep: mean applies to sampler=sde only/,
    ],
  ];
  for (const [params, message] of cases) {
    assert.throws(() => create(params), (e: unknown) => {
      assert.ok(e instanceof SiaError, `${JSON.stringify(params)}: ${e}`);
      assert.match(e.message, message);
      assert.equal(e.exitCode, 2);
      return true;
    });
  }
  // And the valid neighbours of those combinations are accepted.
  create({ sampler: "sde", eps: 0.1, method: "heun-sde", lastStep: "mean" });
  create({ base: "empirical", gamma: "brownian", engine: "exact" });
  create({ sampler: "ode", lastStep: "denoise" });
});

Deno.test("bad options: the schema rejects bad steps and unknown names with a suggestion", () => {
  const resolve = (params: Record<string, unknown>) =>
    resolveSection(closedForm.params, params, "generate.params.");
  for (const steps of [-1, 0, 2.5]) {
    assert.throws(
      () => resolve({ steps }),
      (e: unknown) =>
        e instanceof SiaError &&
        /^generate\.params\.steps: expected an integer >= 1/.test(e.message),
    );
  }
  assert.throws(
    () => resolve({ schedule: "lnear" }),
    (e: unknown) =>
      e instanceof SiaError &&
      e.message === 'generate.params.schedule: unknown value "lnear" (did you mean "linear"?)',
  );
  assert.throws(
    () => resolve({ gamma: "brownain" }),
    (e: unknown) => e instanceof SiaError && /did you mean "brownian"/.test(e.message),
  );
  assert.throws(
    () => resolve({ stpes: 10 }),
    (e: unknown) =>
      e instanceof SiaError &&
      /^generate\.params\.stpes: unknown key \(did you mean "(generate\.params\.)?steps"\?\)$/
        .test(e.message),
  );
  assert.throws(() => resolve({ delta: 0.5 }), SiaError);
  assert.throws(() => resolve({ eps: -0.1 }), SiaError);
  assert.equal(resolve({}).steps, 100);
  assert.equal(resolve({}).eps, null);
});
