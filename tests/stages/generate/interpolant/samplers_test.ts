// The samplers and the estimation-error models (paper Eq. 4 and 5, Theorem 3, Corollaries 1 to 3)
// on data small enough that every prediction can be derived by hand: a single training point
// (where b* = (y - x) / (1 - t) holds everywhere, so e = x - y solves e' = -e / (1 - t) + delta in
// closed form) and five well-separated points in the plane (where the last Euler step, taken from
// t = 1 - h with sigma = h far below the separation, lands on m + h delta with m a training point).

import assert from "node:assert/strict";
import { Rng } from "../../../../core/rng.ts";
import { ERROR_MODELS } from "../../../../stages/generate/interpolant/error_models.ts";
import type { ErrorModelOptions } from "../../../../stages/generate/interpolant/error_models.ts";
import { exactField } from "../../../../stages/generate/interpolant/field.ts";
import type { Points } from "../../../../stages/generate/interpolant/field.ts";
import { epsAt, integrate, timeGrid } from "../../../../stages/generate/interpolant/samplers.ts";
import type { Method, SamplerOptions } from "../../../../stages/generate/interpolant/samplers.ts";
import { interpolant } from "../../../../stages/generate/interpolant/schedule.ts";
import type { InterpolantOptions } from "../../../../stages/generate/interpolant/schedule.ts";
import {
  circle,
  generate,
  maxAbs,
  maxAbsDiff,
  mean,
  median,
  nearestTwo,
  normals,
  pointDataset,
} from "./_helpers.ts";

const NO_ERROR: ErrorModelOptions = { model: "none" };

function options(o: Partial<SamplerOptions> & { method: Method; steps: number }): SamplerOptions {
  return {
    tStart: 0,
    tEnd: 1,
    epsForm: "constant",
    eps0: 0,
    lastStep: "none",
    error: NO_ERROR,
    ...o,
  };
}

/** Unit directions, one per query. */
function unitDirections(b: number, d: number, stream: string): Float64Array {
  const u = normals(b * d, stream);
  for (let q = 0; q < b; q++) {
    let s = 0;
    for (let v = 0; v < d; v++) s += u[q * d + v] ** 2;
    for (let v = 0; v < d; v++) u[q * d + v] /= Math.sqrt(s);
  }
  return u;
}

function noises(b: number, stream: string): Rng[] {
  return Array.from({ length: b }, (_, q) => new Rng(7, stream, q));
}

/** Runs `integrate` on an exact field from a copy of x0. */
async function run(
  interp: InterpolantOptions,
  points: Points,
  x0: Float64Array,
  b: number,
  o: SamplerOptions,
  directions: Float64Array = new Float64Array(b * points.d),
  stream = "sde",
) {
  return await integrate(
    interpolant(interp),
    exactField(points),
    x0.slice(),
    b,
    o,
    noises(b, stream),
    directions,
  );
}

const LINEAR: InterpolantOptions = { schedule: "linear", gamma: "none" };
const single: Points = { y: Float32Array.from([0.75, -0.5, 0.25]), n: 1, d: 3 };

Deno.test("samplers: the time grid is uniform and hits both ends exactly", () => {
  const g = timeGrid({ steps: 7, tStart: 0.001, tEnd: 0.999 });
  assert.equal(g.length, 8);
  assert.equal(g[0], 0.001);
  assert.equal(g[7], 0.999);
  for (let k = 1; k < 8; k++) assert.ok(Math.abs(g[k] - g[k - 1] - 0.998 / 7) <= 1e-15);
});

Deno.test("samplers: NFE is counted per method", async () => {
  // For the linear path sigma(1) = 0, so heun and rk4 replace their last step by the frozen-
  // denoiser step (one evaluation), and heun-sde falls back to Euler-Maruyama there.
  const x0 = normals(3, "nfe");
  const expected: [Method, number][] = [
    ["euler", 10],
    ["stable", 10],
    ["heun", 2 * 10 - 1],
    ["rk4", 4 * 10 - 3],
    ["em", 10],
    ["heun-sde", 2 * 10 - 1],
  ];
  for (const [method, nfe] of expected) {
    const sde = method === "em" || method === "heun-sde";
    const r = await run(LINEAR, single, x0, 1, options({ method, steps: 10, eps0: sde ? 0.1 : 0 }));
    assert.equal(r.nfe, nfe, method);
  }
});

Deno.test("samplers: eps(t) forms", () => {
  const it = interpolant({ schedule: "linear", gamma: "brownian" });
  for (const t of [0.1, 0.5, 0.9]) {
    const c = it.at(t);
    assert.equal(epsAt("constant", 0.3, t, c, false), 0.3);
    assert.ok(Math.abs(epsAt("linear", 0.3, t, c, false) - 0.3 * (1 - t)) <= 1e-16);
    assert.ok(Math.abs(epsAt("sigma", 0.3, t, c, false) - 0.3 * c.sigma2) <= 1e-16);
    assert.ok(Math.abs(epsAt("decreasing", 0.3, t, c, false) - 0.3 * (1 - t) ** 2) <= 1e-16);
    // Both ends: sigma^2 = gamma^2.
    assert.ok(Math.abs(epsAt("sigma", 0.3, t, c, true) - 0.3 * c.gamma ** 2) <= 1e-16);
    assert.ok(epsAt("sbdm", 0.3, t, c, false) >= 0);
  }
});

Deno.test("samplers: one training point, linear path: Euler is exact (x_t = t y + (1 - t) x0)", async () => {
  // With N = 1 the denoiser is y everywhere and the exact solution is linear in t, so Euler's
  // steps reproduce it up to float64 rounding (~1e-15 per step over 10..100 steps).
  const b = 4;
  const x0 = normals(b * 3, "euler-exact");
  for (const [tEnd, steps] of [[0.5, 10], [0.9, 37], [1, 100]]) {
    const { x } = await run(LINEAR, single, x0, b, options({ method: "euler", steps, tEnd }));
    for (let q = 0; q < b; q++) {
      for (let v = 0; v < 3; v++) {
        const expected = tEnd * single.y[v] + (1 - tEnd) * x0[q * 3 + v];
        assert.ok(Math.abs(x[q * 3 + v] - expected) <= 1e-12, `tEnd ${tEnd}`);
      }
    }
  }
});

Deno.test({
  name: "samplers: one training point: the stable step solves the ODE exactly for any schedule",
  fn: async () => {
    // m = y is constant, so freezing it is exact: x_t = beta(t) y + (sigma(t) / sigma(0))
    // (x0 - beta(0) y) on every grid, however coarse, and x_1 = y.
    const b = 3;
    const x0 = normals(b * 3, "stable-exact");
    for (
      const interp of [
        LINEAR,
        { schedule: "trig", gamma: "none" },
        { schedule: "vp", gamma: "none" },
        { schedule: "linear", gamma: "brownian" },
      ] as InterpolantOptions[]
    ) {
      const it = interpolant(interp);
      for (const [tEnd, steps] of [[0.6, 3], [1, 5], [1, 50]]) {
        const { x } = await run(interp, single, x0, b, options({ method: "stable", steps, tEnd }));
        const c0 = it.at(0);
        const c = it.at(tEnd);
        const ratio = Math.sqrt(c.sigma2 / c0.sigma2);
        for (let q = 0; q < b; q++) {
          for (let v = 0; v < 3; v++) {
            const expected = c.beta * single.y[v] + ratio * (x0[q * 3 + v] - c0.beta * single.y[v]);
            assert.ok(
              Math.abs(x[q * 3 + v] - expected) <= 1e-12,
              `${JSON.stringify(interp)} tEnd ${tEnd} steps ${steps}: ${
                x[q * 3 + v]
              } vs ${expected}`,
            );
          }
        }
      }
    }
  },
});

Deno.test({
  name: "samplers: heun and rk4 on the trig path land on a single training point",
  fn: async () => {
    const x0 = normals(2 * 3, "trig-heun");
    for (const method of ["heun", "rk4"] as const) {
      const { x } = await run(
        { schedule: "trig", gamma: "none" },
        single,
        x0,
        2,
        options({ method, steps: 50 }),
      );
      for (let q = 0; q < 2; q++) {
        const err = maxAbsDiff(x.subarray(q * 3, q * 3 + 3), single.y);
        assert.ok(err <= 1e-6, `${method}: |x - y| = ${err}`);
      }
    }
  },
});

Deno.test("samplers: high-order methods converge to the exact single-point trajectory", async () => {
  // Trig path, tEnd = 0.9 (clear of the singular end): the exact solution is
  // x_t = beta(t) y + (alpha(t) / alpha(0)) (x0 - beta(0) y). Heun's global error is O(h^2) and
  // rk4's O(h^4): halving h must cut the error by ~4 and ~16 (asserted > 3 and > 10).
  const it = interpolant({ schedule: "trig", gamma: "none" });
  const x0 = normals(3, "order");
  const c = it.at(0.9);
  const exact = Float64Array.from({ length: 3 }, (_, v) => c.beta * single.y[v] + c.alpha * x0[v]);
  for (const [method, factor] of [["euler", 1.8], ["heun", 3], ["rk4", 10]] as const) {
    const err = async (steps: number) => {
      const { x } = await run(
        { schedule: "trig", gamma: "none" },
        single,
        x0,
        1,
        options({ method, steps, tEnd: 0.9 }),
      );
      return maxAbsDiff(x, exact);
    };
    const coarse = await err(20);
    const fine = await err(40);
    assert.ok(coarse / fine > factor, `${method}: ${coarse} -> ${fine}`);
  }
});

Deno.test("samplers: the SDE keeps the marginal rho_t (one point in d = 1, t = 0.5)", async () => {
  // rho_t = N(t y, (1 - t)^2) for one point y; at t = 0.5: mean 0.5 y, variance 0.25, for any
  // eps. 4000 samples: the sample mean's standard error is 0.5 / sqrt(4000) = 0.008 and the
  // variance's is 0.25 sqrt(2 / 4000) = 0.0056; Euler-Maruyama with h = 1/400 adds an O(h eps)
  // bias (~0.003 for eps = 1). Tolerances: 0.035 on the mean and 0.025 on the variance (> 4 sigma).
  const b = 4000;
  const point: Points = { y: Float32Array.from([1.5]), n: 1, d: 1 };
  const x0 = normals(b, "marginal-x0");
  for (const [method, eps0] of [["em", 1], ["em", 0.2], ["heun-sde", 1], ["euler", 0]] as const) {
    const { x } = await run(
      LINEAR,
      point,
      x0,
      b,
      options({ method, steps: 200, tEnd: 0.5, eps0 }),
      new Float64Array(b),
      `marginal-${method}-${eps0}`,
    );
    const m = mean(x);
    const v = mean(Array.from(x, (z) => (z - m) ** 2));
    assert.ok(Math.abs(m - 0.75) <= 0.035, `${method} eps ${eps0}: mean ${m}`);
    assert.ok(Math.abs(v - 0.25) <= 0.025, `${method} eps ${eps0}: variance ${v}`);
  }
});

Deno.test("error models: the four models are offered", () => {
  assert.deepEqual([...ERROR_MODELS], ["none", "bounded", "time-scaled", "density-inverse"]);
});

Deno.test("Corollary 2 (continuous): e / (1 - t) = e0 + C u [(1 - t)^(-p) - 1] / p for one point", async () => {
  // One training point, linear path: e = x - y obeys e' = -e / (1 - t) + C (1 - t)^(-p) u, so
  // e(t) = (1 - t) (e0 + C u [(1 - t)^(-p) - 1] / p). Euler with h = 1/4000 has global error
  // O(h) relative; checked at t = 0.9 to 2e-3 relative of |e|.
  const b = 3;
  const d = 3;
  const x0 = normals(b * d, "cor2-x0");
  const u = unitDirections(b, d, "cor2-u");
  const t = 0.9;
  for (const p of [0.5, 1, 2]) {
    for (const C of [0.3, 2]) {
      const { x } = await run(
        LINEAR,
        single,
        x0,
        b,
        options({
          method: "euler",
          steps: 3600,
          tEnd: t,
          error: { model: "time-scaled", c: C, p },
        }),
        u,
      );
      const e = new Float64Array(b * d);
      const predicted = new Float64Array(b * d);
      for (let q = 0; q < b; q++) {
        for (let v = 0; v < d; v++) {
          const k = q * d + v;
          e[k] = x[k] - single.y[v];
          predicted[k] = (1 - t) *
            (x0[k] - single.y[v] + C * u[k] * ((1 - t) ** -p - 1) / p);
        }
      }
      const rel = maxAbsDiff(e, predicted) / maxAbs(predicted);
      assert.ok(rel <= 2e-3, `p ${p} C ${C}: relative error ${rel}`);
    }
  }
});

// Five points on a circle of radius 3 (separation 3.53) in the plane: unambiguous data. At the
// last Euler step t = 1 - h, sigma = h <= 0.01, so the posterior is one-hot on the training point
// m the sample has committed to and b* = (m - x) / h: the step lands on m + h delta(1 - h) exactly.
// The outputs are float32 (coordinates ~3, ulp 2.4e-7): distances carry ~1e-6 absolute error.
const FIVE = pointDataset("five points", circle(5, 3), 2);
const HALF_SEPARATION = 3 * Math.sin(Math.PI / 5);

async function finalDistances(params: Record<string, unknown>, count = 100) {
  const { images } = await generate(
    { engine: "exact", conditional: false, method: "euler", ...params },
    FIVE,
    count,
    count,
    11,
  );
  return nearestTwo(images, FIVE).nearest;
}

Deno.test("Corollary 1: a bounded error C still lands within C h of a training point", async () => {
  for (const C of [1, 5, 25]) {
    for (const steps of [100, 1000]) {
      const h = 1 / steps;
      const dist = await finalDistances({ error: "bounded", errorC: C, steps });
      // The last step lands on m + h C u: exactly C h from m, and m is the nearest training
      // point while C h < half the separation (0.25 < 1.76 at worst).
      assert.ok(C * h < HALF_SEPARATION);
      for (const x of dist) {
        assert.ok(Math.abs(x - C * h) <= 1e-6 + 1e-5 * C * h, `C ${C}, steps ${steps}: ${x}`);
      }
    }
  }
});

Deno.test("Corollary 2: time-scaled error C (1 - t)^(-p): p < 1 converges, p = 1 a ball, p > 1 diverges", async () => {
  // The last Euler step adds h C (1 - t)^(-p) u at 1 - t = h: the final distance is C h^(1 - p).
  const C = 0.5;
  const at = async (p: number, steps: number) =>
    await finalDistances({ error: "time-scaled", errorC: C, errorP: p, steps });
  // p = 0.5: C sqrt(h), shrinking as the steps grow.
  const half100 = await at(0.5, 100);
  const half1000 = await at(0.5, 1000);
  for (const [dist, h] of [[half100, 0.01], [half1000, 0.001]] as const) {
    for (const x of dist) assert.ok(Math.abs(x - C * Math.sqrt(h)) <= 1e-5, `p 0.5, h ${h}: ${x}`);
  }
  assert.ok(median(half1000) < median(half100) / 3);
  // p = 1: a ball of radius C whatever the step count (C = 0.5 < half separation).
  for (const steps of [100, 1000]) {
    const dist = await at(1, steps);
    for (const x of dist) {
      assert.ok(x >= 0.5 * C && x <= 1.5 * C, `p 1, steps ${steps}: ${x}`);
      assert.ok(Math.abs(x - C) <= 1e-5, `p 1, steps ${steps}: ${x} (last step lands at C)`);
    }
  }
  // p = 2: C / h from the committed point, so at least C / h - 6 (the diameter) from every
  // training point: 44 at 100 steps, 494 at 1000; far beyond C and growing with the steps.
  const two100 = await at(2, 100);
  const two1000 = await at(2, 1000);
  for (const [dist, steps] of [[two100, 100], [two1000, 1000]] as const) {
    for (const x of dist) assert.ok(x >= C * steps - 6, `p 2, steps ${steps}: ${x}`);
  }
  assert.ok(median(two1000) > 5 * median(two100));
});

Deno.test("Corollary 3: density-inverse error: small eps0 concentrates, large eps0 diverges", async () => {
  // delta = eps0 exp(min_i |x - beta y_i|^2 / (2 sigma^2)) u. Near a committed training point the
  // exponent is O(d / 2), so a small eps0 stays a small error and the last step lands within
  // ~h eps0 e^(d/2) of it; a large one pushes x off the point, the exponent grows, and the error
  // runs away (it is capped at e^80 so the numbers stay finite).
  for (const steps of [100, 1000]) {
    const small = await finalDistances({ error: "density-inverse", errorEps0: 1e-3, steps });
    // Measured max 1.2e-3 (100 steps) and 2.3e-4 (1000 steps): all within 1e-2, far inside the
    // separation.
    for (const x of small) assert.ok(x <= 1e-2, `eps0 1e-3, steps ${steps}: ${x}`);
    for (const eps0 of [1, 10]) {
      const large = await finalDistances({ error: "density-inverse", errorEps0: eps0, steps });
      // Measured ~5e31: far from every training point.
      for (const x of large) assert.ok(x >= 1e3, `eps0 ${eps0}, steps ${steps}: ${x}`);
    }
  }
  const coarse = await finalDistances({ error: "density-inverse", errorEps0: 1e-3, steps: 100 });
  const fine = await finalDistances({ error: "density-inverse", errorEps0: 1e-3, steps: 1000 });
  assert.ok(median(fine) < median(coarse) / 5, "the overfit regime tightens as h shrinks");
});
