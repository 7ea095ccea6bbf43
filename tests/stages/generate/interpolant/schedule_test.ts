// Interpolant schedules: for every schedule family x latent noise, the boundary values the math
// asks for (../shared/spec/math.md, "Conventions"), and every closed-form derivative against a
// central finite difference of the closed-form value. Pure float64, no randomness.

import assert from "node:assert/strict";
import {
  interpolant,
  LATENT_NOISES,
  SCHEDULES,
} from "../../../../stages/generate/interpolant/schedule.ts";
import type {
  Interpolant,
  InterpolantOptions,
} from "../../../../stages/generate/interpolant/schedule.ts";

// Central differences with h = 1e-6 in float64: truncation error is h^2 |f'''| / 6 ~ 1e-12 |f'''|
// (|f'''| <= ~1e3 for vp's exp of a quadratic with bmax = 20), and rounding error is about
// 2^-52 |f| / h ~ 2e-10 |f|. Both sit well under 1e-6 relative for derivatives of size >= 1e-2;
// the absolute floor 1e-8 covers derivatives that cross zero (gamma gamma' at t = 1/2).
const H = 1e-6;
const REL = 1e-6;
const ABS = 1e-8;

/** Interior times: 0.01, 0.02, ..., 0.99. */
const TIMES = Array.from({ length: 99 }, (_, k) => (k + 1) / 100);

function fd(f: (t: number) => number, t: number): number {
  return (f(t + H) - f(t - H)) / (2 * H);
}

function close(actual: number, expected: number, what: string) {
  assert.ok(Number.isFinite(actual), `${what}: ${actual} is not finite`);
  const err = Math.abs(actual - expected);
  assert.ok(
    err <= REL * Math.abs(expected) + ABS,
    `${what}: ${actual} vs ${expected} (error ${err.toExponential(2)})`,
  );
}

const CASES: InterpolantOptions[] = [];
for (const schedule of SCHEDULES) {
  for (const gamma of LATENT_NOISES) CASES.push({ schedule, gamma });
}
// Non-default parameters, so a formula that ignores them is caught.
CASES.push({ schedule: "linear-smin", gamma: "a-brownian", sigmaMin: 0.05, a: 2.5 });
CASES.push({ schedule: "vp", gamma: "none", vpBetaMin: 0.5, vpBetaMax: 10 });

const label = (o: InterpolantOptions) => JSON.stringify(o);

Deno.test("schedule: every family x latent noise is covered", () => {
  assert.equal(SCHEDULES.length, 4);
  assert.equal(LATENT_NOISES.length, 5);
  assert.deepEqual([...SCHEDULES], ["linear", "linear-smin", "trig", "vp"]);
  assert.deepEqual([...LATENT_NOISES], [
    "none",
    "brownian",
    "a-brownian",
    "bsquared",
    "sinesquared",
  ]);
});

Deno.test("schedule: boundary values alpha, beta, gamma at t = 0 and t = 1", () => {
  for (const o of CASES) {
    const it: Interpolant = interpolant(o);
    const c0 = it.at(0);
    const c1 = it.at(1);
    const name = label(o);
    // gamma vanishes at both ends for every latent noise (sin(pi) is 1.2e-16, squared 1.5e-32).
    assert.ok(Math.abs(c0.gamma) <= 1e-15, `${name}: gamma(0) = ${c0.gamma}`);
    assert.ok(Math.abs(c1.gamma) <= 1e-15, `${name}: gamma(1) = ${c1.gamma}`);
    // gamma gamma' stays finite at the ends (it is carried in closed form for that reason).
    assert.ok(Number.isFinite(c0.gammaGammaDot) && Number.isFinite(c1.gammaGammaDot), name);
    assert.equal(c1.beta, 1, `${name}: beta(1)`);
    switch (o.schedule) {
      case "linear":
      case "trig":
        assert.equal(c0.alpha, 1, `${name}: alpha(0)`);
        assert.equal(c0.beta, 0, `${name}: beta(0)`);
        // trig: cos(pi / 2) = 6.1e-17 in float64, not exactly 0.
        assert.ok(Math.abs(c1.alpha) <= 1e-16, `${name}: alpha(1) = ${c1.alpha}`);
        break;
      case "linear-smin": {
        const s = o.sigmaMin ?? 1e-3;
        assert.equal(c0.alpha, 1, `${name}: alpha(0)`);
        assert.equal(c0.beta, 0, `${name}: beta(0)`);
        assert.ok(Math.abs(c1.alpha - s) <= 1e-15, `${name}: alpha(1) = ${c1.alpha}, want ${s}`);
        break;
      }
      case "vp": {
        // beta(0) = exp(-(bmax - bmin) / 4 - bmin / 2): small but not 0; alpha(0) = sqrt(1 - beta^2).
        const bmin = o.vpBetaMin ?? 0.1;
        const bmax = o.vpBetaMax ?? 20;
        const beta0 = Math.exp(-(bmax - bmin) / 4 - bmin / 2);
        assert.ok(Math.abs(c0.beta - beta0) <= 1e-15, `${name}: beta(0) = ${c0.beta}`);
        assert.ok(c0.beta > 0 && c0.beta < 0.1, `${name}: beta(0) = ${c0.beta}`);
        assert.ok(Math.abs(c0.alpha - Math.sqrt(1 - beta0 * beta0)) <= 1e-15, name);
        assert.equal(c1.alpha, 0, `${name}: alpha(1)`);
        // alpha alpha' = -beta beta' is finite at t = 1 although alpha' is not: beta'(1) = bmin/2.
        if (o.gamma === "none") {
          assert.ok(Math.abs(c1.sigmaSigmaDot + bmin / 2) <= 1e-15, `${name}: sigma sigma'(1)`);
        }
        break;
      }
    }
    // Variance preserving: alpha^2 + beta^2 = 1 for trig and vp, at every t.
    if (o.schedule === "trig" || o.schedule === "vp") {
      for (const t of [0, ...TIMES, 1]) {
        const c = it.at(t);
        assert.ok(Math.abs(c.alpha ** 2 + c.beta ** 2 - 1) <= 1e-14, `${name} at ${t}`);
      }
    }
  }
});

Deno.test("schedule: sigma2 = alpha^2 + gamma^2 and the latent noise formulas", () => {
  for (const o of CASES) {
    const it = interpolant(o);
    for (const t of [0, ...TIMES, 1]) {
      const c = it.at(t);
      const name = `${label(o)} at t = ${t}`;
      assert.ok(
        Math.abs(c.sigma2 - (c.alpha ** 2 + c.gamma ** 2)) <= 1e-15 * Math.max(1, c.sigma2),
        name,
      );
      const expectedGamma = {
        none: 0,
        brownian: Math.sqrt(t * (1 - t)),
        "a-brownian": Math.sqrt((o.a ?? 1) * t * (1 - t)),
        bsquared: t * (1 - t),
        sinesquared: Math.sin(Math.PI * t) ** 2,
      }[o.gamma];
      assert.ok(Math.abs(c.gamma - expectedGamma) <= 1e-15, `${name}: gamma = ${c.gamma}`);
      assert.ok(c.gamma >= 0, name);
    }
  }
});

Deno.test("schedule: alpha', beta' match central finite differences on (0.01 .. 0.99)", () => {
  for (const o of CASES) {
    const it = interpolant(o);
    for (const t of TIMES) {
      const c = it.at(t);
      const name = `${label(o)} at t = ${t}`;
      close(c.alphaDot, fd((s) => it.at(s).alpha, t), `${name}: alpha'`);
      close(c.betaDot, fd((s) => it.at(s).beta, t), `${name}: beta'`);
    }
  }
});

Deno.test("schedule: gamma gamma' = d/dt(gamma^2) / 2 and sigma sigma' = d/dt(sigma2) / 2", () => {
  for (const o of CASES) {
    const it = interpolant(o);
    for (const t of TIMES) {
      const c = it.at(t);
      const name = `${label(o)} at t = ${t}`;
      close(c.gammaGammaDot, fd((s) => it.at(s).gamma ** 2, t) / 2, `${name}: gamma gamma'`);
      close(c.sigmaSigmaDot, fd((s) => it.at(s).sigma2, t) / 2, `${name}: sigma sigma'`);
      // And the definition sigma sigma' = alpha alpha' + gamma gamma' where alpha' is finite.
      close(c.sigmaSigmaDot, c.alpha * c.alphaDot + c.gammaGammaDot, `${name}: identity`);
    }
  }
});

Deno.test("schedule: one-sided derivatives at the ends stay finite and match", () => {
  // At t = 0 and t = 1 a one-sided second-order difference (h = 1e-6) checks gamma gamma' and
  // sigma sigma', which the samplers use up to the ends; tolerance as above, times ~3 for the
  // one-sided stencil's larger rounding constant.
  const oneSided = (f: (t: number) => number, t: number, dir: number) =>
    dir * (-3 * f(t) + 4 * f(t + dir * H) - f(t + 2 * dir * H)) / (2 * H);
  for (const o of CASES) {
    const it = interpolant(o);
    for (const [t, dir] of [[0, 1], [1, -1]]) {
      const c = it.at(t);
      const name = `${label(o)} at t = ${t}`;
      const gg = oneSided((s) => it.at(s).gamma ** 2, t, dir) / 2;
      const ss = oneSided((s) => it.at(s).sigma2, t, dir) / 2;
      assert.ok(Math.abs(c.gammaGammaDot - gg) <= 3 * (REL * Math.abs(gg) + ABS), `${name}: gg'`);
      assert.ok(Math.abs(c.sigmaSigmaDot - ss) <= 3 * (REL * Math.abs(ss) + ABS), `${name}: ss'`);
    }
  }
});
