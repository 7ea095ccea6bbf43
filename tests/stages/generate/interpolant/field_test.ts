// The closed-form field (paper Prop. 1 to 3) against the math it claims, in float64 on small
// seeded data: the velocity and score are checked against rho_t written out independently
// (_helpers.ts) through the score identity s* = grad log rho_t and the continuity equation
// d/dt rho_t + div(rho_t b*) = 0, plus the online softmax's chunking and the onnx engine's
// agreement with the exact path.

import assert from "node:assert/strict";
import { bothEndsField } from "../../../../stages/generate/interpolant/both_ends.ts";
import {
  exactDenoise,
  exactField,
  score,
  velocity,
} from "../../../../stages/generate/interpolant/field.ts";
import type { Field, Points } from "../../../../stages/generate/interpolant/field.ts";
import { onnxField } from "../../../../stages/generate/interpolant/onnx_field.ts";
import {
  interpolant,
  LATENT_NOISES,
  SCHEDULES,
} from "../../../../stages/generate/interpolant/schedule.ts";
import type {
  Interpolant,
  InterpolantOptions,
} from "../../../../stages/generate/interpolant/schedule.ts";
import { Rng } from "../../../../core/rng.ts";
import {
  fdGradient,
  logRhoBothEnds,
  logRhoGaussianBase,
  maxAbs,
  maxAbsDiff,
  normals,
  randomPoints,
} from "./_helpers.ts";

/** b* and s* of a field at (t, x) for a single query. */
async function fieldAt(it: Interpolant, field: Field, t: number, x: Float64Array) {
  const c = it.at(t);
  const v = await field.evaluate(c, x, 1);
  const b = velocity(c, field.bothEnds, x, v, new Float64Array(x.length));
  const s = score(c, field.bothEnds, x, v, new Float64Array(x.length));
  return { b, s, v };
}

/** A reference denoiser written the plain way: all logits, one softmax, no chunks. */
function naiveDenoise(points: Points, x: Float64Array, beta: number, sigma2: number) {
  const { y, n, d } = points;
  const logits = Array.from({ length: n }, (_, i) => {
    let dist = 0;
    for (let v = 0; v < d; v++) dist += (x[v] - beta * y[i * d + v]) ** 2;
    return (points.logWeights?.[i] ?? 0) - dist / (2 * sigma2);
  });
  const max = Math.max(...logits);
  const w = logits.map((l) => Math.exp(l - max));
  const total = w.reduce((a, b) => a + b, 0);
  const m = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let v = 0; v < d; v++) m[v] += (w[i] / total) * y[i * d + v];
  return m;
}

/** A query drawn from rho_t itself: beta y_i + sigma z (where the field matters). */
function drawFromRho(points: Points, it: Interpolant, t: number, rng: Rng): Float64Array {
  const c = it.at(t);
  const i = rng.int(points.n);
  const s = Math.sqrt(c.sigma2);
  return Float64Array.from(
    { length: points.d },
    (_, v) => c.beta * points.y[i * points.d + v] + s * rng.normal(),
  );
}

Deno.test("field: N = 1, linear, no gamma: b* = (y - x) / (1 - t)", async () => {
  const points = randomPoints(1, 5, "single");
  const it = interpolant({ schedule: "linear", gamma: "none" });
  const field = exactField(points);
  const x = normals(5, "single-x");
  for (const t of [0, 0.1, 0.5, 0.9, 0.999]) {
    const { b } = await fieldAt(it, field, t, x);
    const expected = Float64Array.from({ length: 5 }, (_, v) => (points.y[v] - x[v]) / (1 - t));
    // A handful of float64 operations on O(1 / (1 - t)) values: 1e-12 relative is ~1e4 ulps.
    assert.ok(maxAbsDiff(b, expected) <= 1e-12 * maxAbs(expected), `t = ${t}`);
  }
});

Deno.test("field: the posterior weights sum to 1", () => {
  // Coordinate 2 is the same (0.25) for every point: m must reproduce it whatever the weights.
  const n = 30;
  const d = 4;
  const base = randomPoints(n, d, "constant-coordinate");
  const y = base.y.slice();
  for (let i = 0; i < n; i++) y[i * d + 2] = 0.25;
  const points: Points = { y, n, d };
  const x = normals(8 * d, "constant-coordinate-x", 2);
  for (const [beta, sigma2] of [[0, 1], [0.3, 0.49], [0.9, 0.01], [0.999, 1e-6]]) {
    const { m } = exactDenoise(points, x, 8, beta, sigma2, 7);
    for (let q = 0; q < 8; q++) {
      // Sum of weights times 0.25, each rounded once: a few ulps of 0.25.
      assert.ok(Math.abs(m[q * d + 2] - 0.25) <= 1e-15, `beta ${beta}: ${m[q * d + 2]}`);
    }
  }

  // By hand: y = {0, 1} in d = 1, x = 0.4, beta = 0.5, sigma^2 = 0.1, weights (1/4, 3/4).
  // logits: -(0.4)^2 / 0.2 = -0.8 + log(1/4) and -(0.1)^2 / 0.2 = -0.05 + log(3/4), so
  // m = lambda_2 = 3 e^-0.05 / (e^-0.8 + 3 e^-0.05).
  const two: Points = {
    y: Float32Array.from([0, 1]),
    n: 2,
    d: 1,
    logWeights: Float64Array.from([Math.log(0.25), Math.log(0.75)]),
  };
  const expected = 3 * Math.exp(-0.05) / (Math.exp(-0.8) + 3 * Math.exp(-0.05));
  for (const chunk of [1, 2]) {
    const { m, nearest2 } = exactDenoise(two, Float64Array.from([0.4]), 1, 0.5, 0.1, chunk);
    assert.ok(Math.abs(m[0] - expected) <= 1e-15, `chunk ${chunk}: ${m[0]} vs ${expected}`);
    assert.ok(Math.abs(nearest2[0] - 0.01) <= 1e-16, `nearest2 ${nearest2[0]}`);
  }
});

Deno.test("field: chunked equals unchunked and the plain softmax (float64)", () => {
  const n = 53;
  const d = 6;
  const b = 5;
  const points = randomPoints(n, d, "chunks");
  const weighted: Points = {
    ...points,
    logWeights: Float64Array.from({ length: n }, (_, i) => Math.log(1 + (i % 5))),
  };
  const it = interpolant({ schedule: "linear", gamma: "none" });
  const rng = new Rng(7, "chunks-x");
  for (const pts of [points, weighted]) {
    for (const t of [0, 0.3, 0.7, 0.95, 0.999]) {
      const c = it.at(t);
      const x = new Float64Array(b * d);
      for (let q = 0; q < b; q++) x.set(drawFromRho(pts, it, t, rng), q * d);
      const full = exactDenoise(pts, x, b, c.beta, c.sigma2, n);
      for (const chunk of [1, 7, n, 1024]) {
        const got = exactDenoise(pts, x, b, c.beta, c.sigma2, chunk);
        // Only the order of summation changes: float64 rounding of ~n terms, far under 1e-12.
        assert.ok(
          maxAbsDiff(got.m, full.m) <= 1e-12 * maxAbs(full.m),
          `t ${t}, chunk ${chunk}: ${maxAbsDiff(got.m, full.m)}`,
        );
        assert.deepEqual(got.nearest2, full.nearest2);
      }
      for (let q = 0; q < b; q++) {
        const ref = naiveDenoise(pts, x.subarray(q * d, (q + 1) * d), c.beta, c.sigma2);
        assert.ok(maxAbsDiff(full.m.subarray(q * d, (q + 1) * d), ref) <= 1e-12, `t ${t}`);
      }
    }
  }
});

/** The families the spec says were checked numerically, plus the remaining latent noises. */
const SCORE_FAMILIES: InterpolantOptions[] = [
  { schedule: "linear", gamma: "none" },
  { schedule: "trig", gamma: "none" },
  { schedule: "vp", gamma: "none" },
  { schedule: "linear", gamma: "brownian" },
  { schedule: "trig", gamma: "brownian" },
  { schedule: "linear-smin", gamma: "bsquared" },
  { schedule: "vp", gamma: "sinesquared" },
  { schedule: "trig", gamma: "a-brownian", a: 3 },
];

Deno.test("field: score s* = grad log rho_t (finite differences, float64)", async () => {
  const n = 20;
  const d = 3;
  const points: Points = {
    ...randomPoints(n, d, "score"),
    logWeights: Float64Array.from({ length: n }, (_, i) => -0.1 * i),
  };
  const field = exactField(points, 6);
  const rng = new Rng(7, "score-x");
  let worst = 0;
  for (const o of SCORE_FAMILIES) {
    const it = interpolant(o);
    for (const t of [0.05, 0.3, 0.6, 0.85, 0.95]) {
      const c = it.at(t);
      for (let k = 0; k < 4; k++) {
        const x = drawFromRho(points, it, t, rng);
        const { s } = await fieldAt(it, field, t, x);
        // Step h = 1e-4 sigma: truncation h^2 |d^3 log rho| / 6 ~ 1e-8 / sigma^3 * sigma^2 relative
        // to |s| ~ 1 / sigma, i.e. ~1e-9; rounding 1e-16 |log rho| / h ~ 1e-11 / sigma.
        const h = 1e-4 * Math.sqrt(c.sigma2);
        const g = fdGradient((z) => logRhoGaussianBase(points, c, z), x, h);
        const rel = maxAbsDiff(s, g) / Math.max(maxAbs(g), 1 / Math.sqrt(c.sigma2));
        worst = Math.max(worst, rel);
        assert.ok(rel <= 1e-7, `${JSON.stringify(o)} t ${t}: relative error ${rel}`);
      }
    }
  }
  console.log(`score vs grad log rho: worst relative error ${worst.toExponential(2)}`);
});

/**
 * The continuity equation divided by rho (it is linear in rho, and log rho keeps the numbers in
 * range): d/dt log rho + div b + b . grad log rho = 0. Returns |residual| / (sum of |terms|).
 */
async function continuityResidual(
  it: Interpolant,
  field: Field,
  logRho: (t: number, x: Float64Array) => number,
  t: number,
  x: Float64Array,
  hx: number,
  ht: number,
): Promise<number> {
  const d = x.length;
  const dtLogRho = (logRho(t + ht, x) - logRho(t - ht, x)) / (2 * ht);
  const gradLogRho = fdGradient((z) => logRho(t, z), x, hx);
  const { b } = await fieldAt(it, field, t, x);
  let div = 0;
  for (let v = 0; v < d; v++) {
    const p = x.slice();
    const m = x.slice();
    p[v] += hx;
    m[v] -= hx;
    div += ((await fieldAt(it, field, t, p)).b[v] - (await fieldAt(it, field, t, m)).b[v]) /
      (2 * hx);
  }
  let transport = 0;
  for (let v = 0; v < d; v++) transport += b[v] * gradLogRho[v];
  const residual = dtLogRho + div + transport;
  const scale = Math.abs(dtLogRho) + Math.abs(div) + Math.abs(transport);
  return Math.abs(residual) / scale;
}

Deno.test("field: continuity equation d/dt rho + div(rho b*) = 0, every family", async () => {
  // Central differences with hx = 1e-4 sigma and ht = 1e-6: the space truncation error is
  // ~(hx / sigma)^2 ~ 1e-8 of terms of size d / sigma^2; in time, log rho moves on the scale of
  // sigma / sigma' (~0.05 at t = 0.95, shorter for vp), so ht = 1e-5 leaves ~1e-7 (measured) and
  // ht = 1e-6 about 3e-9; rounding is ~1e-16 |log rho| / ht ~ 1e-9 of the terms. Measured worst
  // 3e-9 (the spec's "about 1e-8"); asserted at 1e-7.
  let worst = 0;
  const rng = new Rng(7, "continuity-x");
  for (const d of [2, 3]) {
    const points = randomPoints(12, d, `continuity-${d}`);
    const field = exactField(points, 5);
    for (const schedule of SCHEDULES) {
      for (const gamma of LATENT_NOISES) {
        const it = interpolant({ schedule, gamma });
        for (const t of [0.1, 0.45, 0.8, 0.95]) {
          const x = drawFromRho(points, it, t, rng);
          const c = it.at(t);
          const rel = await continuityResidual(
            it,
            field,
            (s, z) => logRhoGaussianBase(points, it.at(s), z),
            t,
            x,
            1e-4 * Math.sqrt(c.sigma2),
            1e-6,
          );
          worst = Math.max(worst, rel);
          assert.ok(rel <= 1e-7, `${schedule}+${gamma}, d ${d}, t ${t}: relative residual ${rel}`);
        }
      }
    }
  }
  console.log(`continuity (Gaussian base): worst relative residual ${worst.toExponential(2)}`);
});

Deno.test("both ends: continuity equation and score for rho_t = sum pi_ki N(alpha a_k + beta y_i, gamma^2)", async () => {
  const d = 2;
  const base = { ...randomPoints(4, d, "both-base", -2, 2) };
  const target = randomPoints(6, d, "both-target");
  const field = bothEndsField(base, target);
  assert.equal(field.bothEnds, true);
  const rng = new Rng(7, "both-x");
  let worstContinuity = 0;
  let worstScore = 0;
  for (const o of [{ gamma: "brownian" }, { gamma: "a-brownian", a: 0.3 }] as const) {
    for (const schedule of ["linear", "trig"] as const) {
      const it = interpolant({ schedule, ...o });
      for (const t of [0.05, 0.3, 0.6, 0.9, 0.97]) {
        const c = it.at(t);
        for (let k = 0; k < 3; k++) {
          // A draw from rho_t: alpha a_k + beta y_i + gamma z.
          const ka = rng.int(base.n);
          const i = rng.int(target.n);
          const x = Float64Array.from(
            { length: d },
            (_, v) =>
              c.alpha * base.y[ka * d + v] + c.beta * target.y[i * d + v] +
              c.gamma * rng.normal(),
          );
          const logRho = (s: number, z: Float64Array) => logRhoBothEnds(base, target, it.at(s), z);
          const rel = await continuityResidual(it, field, logRho, t, x, 1e-4 * c.gamma, 1e-6);
          worstContinuity = Math.max(worstContinuity, rel);
          assert.ok(rel <= 1e-7, `${schedule} ${o.gamma} t ${t}: continuity residual ${rel}`);
          const { s } = await fieldAt(it, field, t, x);
          const g = fdGradient((z) => logRho(t, z), x, 1e-4 * c.gamma);
          const err = maxAbsDiff(s, g) / Math.max(maxAbs(g), 1 / c.gamma);
          worstScore = Math.max(worstScore, err);
          assert.ok(err <= 1e-7, `${schedule} ${o.gamma} t ${t}: score error ${err}`);
        }
      }
    }
  }
  console.log(
    `both ends: continuity ${worstContinuity.toExponential(2)}, score ${
      worstScore.toExponential(2)
    }`,
  );
});

Deno.test("both ends: one base point and a point target reduce to the conditional path", async () => {
  // K = N = 1: m_a = a, m_y = y exactly, so b* = alpha' a + beta' y + (gamma'/gamma)(x - mean).
  const a = Float32Array.from([1, -2]);
  const y = Float32Array.from([0.5, 0.25]);
  const field = bothEndsField({ y: a, n: 1, d: 2 }, { y, n: 1, d: 2 });
  const it = interpolant({ schedule: "linear", gamma: "brownian" });
  const x = Float64Array.from([0.3, 0.7]);
  for (const t of [0.2, 0.5, 0.8]) {
    const c = it.at(t);
    const { b, v } = await fieldAt(it, field, t, x);
    assert.deepEqual(Array.from(v.ma!), Array.from(a));
    assert.deepEqual(Array.from(v.my), Array.from(y));
    const k = c.gammaGammaDot / c.gamma ** 2;
    for (let j = 0; j < 2; j++) {
      const expected = c.alphaDot * a[j] + c.betaDot * y[j] +
        k * (x[j] - c.alpha * a[j] - c.beta * y[j]);
      assert.ok(Math.abs(b[j] - expected) <= 1e-14, `t ${t}`);
    }
  }
});

Deno.test("onnx engine equals the exact float64 path (N = 3000, d = 64)", async () => {
  const n = 3000;
  const d = 64;
  const b = 48;
  // Clustered [0, 1] data (30 centres, per-point jitter 0.05) so that late times have close
  // competitors, plus uniform data: both the merged float32 and the exact-candidate branches run.
  const rng = new Rng(7, "onnx-data");
  const centres = Float64Array.from({ length: 30 * d }, () => rng.uniform());
  const clustered = Float32Array.from(
    { length: n * d },
    (_, k) =>
      Math.min(
        1,
        Math.max(0, centres[(Math.floor(k / d) % 30) * d + (k % d)] + 0.05 * rng.normal()),
      ),
  );
  const sets: [string, Points][] = [
    ["uniform", randomPoints(n, d, "onnx-uniform")],
    ["clustered", { y: clustered, n, d }],
  ];
  const it = interpolant({ schedule: "linear", gamma: "none" });
  let worstM = 0;
  let worstMid = 0;
  let worstN = 0;
  for (const [name, points] of sets) {
    for (const chunk of [1000, 3000]) {
      const field = await onnxField(points, { chunk });
      try {
        for (const t of [0, 0.3, 0.7, 0.8, 0.9, 0.95, 0.999]) {
          const c = it.at(t);
          const x = new Float64Array(b * d);
          for (let q = 0; q < b; q++) x.set(drawFromRho(points, it, t, rng), q * d);
          const exact = exactDenoise(points, x, b, c.beta, c.sigma2);
          const got = await field.evaluate(c, x, b);
          const errM = maxAbsDiff(got.my, exact.m);
          // 1e-5 on [0, 1] data at the times the engine was specified for: its float32 logits
          // carry an absolute error of about eps32 (beta / sigma^2) |x| |y| (2e-6 nats at t = 0.7
          // here), far under a 1e-5 change of any weight; near t = 1 the winners are recomputed
          // exactly in float64. In between (t = 0.8, 0.9) on clustered data the weights are still
          // spread over a cluster while the logits have grown to ~2e3 nats, so float32 rounding
          // moves them by ~1e-4 nats: measured 2.1e-5 at t = 0.9 (a known limit of the merged
          // float32 branch, reported), asserted at 1e-4.
          const mid = t === 0.8 || t === 0.9;
          if (mid) worstMid = Math.max(worstMid, errM);
          else worstM = Math.max(worstM, errM);
          const tol = mid ? 1e-4 : 1e-5;
          assert.ok(errM <= tol, `${name} chunk ${chunk} t ${t}: max |m - exact| = ${errM}`);
          for (let q = 0; q < b; q++) {
            const rel = Math.abs(got.nearest2[q] - exact.nearest2[q]) / exact.nearest2[q];
            worstN = Math.max(worstN, rel);
            assert.ok(rel <= 1e-6, `${name} chunk ${chunk} t ${t}: nearest2 relative ${rel}`);
          }
        }
        assert.ok(field.counts.exact + field.counts.merged > 0);
      } finally {
        await field.release();
      }
      console.log(`onnx ${name} chunk ${chunk}: ${JSON.stringify(field.counts)}`);
    }
  }
  console.log(
    `onnx vs exact: max |m| error ${worstM.toExponential(2)} (t = 0.8, 0.9: ${
      worstMid.toExponential(2)
    }), nearest2 ${worstN}`,
  );
});
