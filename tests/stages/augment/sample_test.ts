// The sampling laws: RandomResizedCrop's boxes over 10,000 draws lie inside the image, are the
// rounding of the accepted draw and respect the scale and ratio bounds (but for the centre-crop
// fallback, tested apart); the accepted draws' area fraction and log ratio follow the uniform law
// conditioned on acceptance (Kolmogorov-Smirnov against the exact conditional CDF, integrated
// numerically); flip, jitter, grayscale and blur fire at their probabilities, the jitter order is a
// uniform permutation and the factors stay in torchvision's ranges. Seeds are fixed: a pass is a
// pass forever.

import assert from "node:assert/strict";
import { Rng } from "../../../core/rng.ts";
import { PRESETS } from "../../../stages/augment/recipes.ts";
import { emptyPlan } from "../../../stages/augment/render.ts";
import {
  emptyCrop,
  roundHalfEven,
  sampleCrop,
  sampleView,
} from "../../../stages/augment/sample.ts";
import type { CropDraw } from "../../../stages/augment/sample.ts";

const DRAWS = 10_000;

interface Law {
  h: number;
  w: number;
  scaleMin: number;
  scaleMax: number;
  ratioMin: number;
  ratioMax: number;
}

function draws(law: Law, seed: number, count = DRAWS): CropDraw[] {
  const out: CropDraw[] = [];
  for (let k = 0; k < count; k++) {
    const rng = new Rng(seed, "augment-test", "crop", k);
    out.push({
      ...sampleCrop(
        rng,
        law.h,
        law.w,
        law.scaleMin,
        law.scaleMax,
        law.ratioMin,
        law.ratioMax,
        emptyCrop(),
      ),
    });
  }
  return out;
}

/** For log ratio l, the accepted interval of area fractions: 0.25 < s A e^(+-l) and
 * round(sqrt(s A e^l)) <= W, round(sqrt(s A e^-l)) <= H (ties have measure zero). */
function acceptedScales(law: Law, l: number): [number, number] {
  const area = law.h * law.w;
  const lo = Math.max(law.scaleMin, 0.25 / (area * Math.exp(l)), 0.25 / (area * Math.exp(-l)));
  const hi = Math.min(
    law.scaleMax,
    (law.w + 0.5) ** 2 / (area * Math.exp(l)),
    (law.h + 0.5) ** 2 / (area * Math.exp(-l)),
  );
  return [lo, hi];
}

const GRID = 4000;

/** The CDFs of the accepted draw's scale and log ratio (uniform law conditioned on acceptance),
 * by midpoint integration over the log ratio. */
function conditionalCdfs(
  law: Law,
): { scale: (t: number) => number; logRatio: (t: number) => number } {
  const l0 = Math.log(law.ratioMin), l1 = Math.log(law.ratioMax);
  const dl = (l1 - l0) / GRID;
  const ls = Float64Array.from({ length: GRID }, (_, k) => l0 + (k + 0.5) * dl);
  const intervals = Array.from(ls, (l) => acceptedScales(law, l));
  const lengths = intervals.map(([lo, hi]) => Math.max(0, hi - lo));
  const cumulative = new Float64Array(GRID + 1);
  for (let k = 0; k < GRID; k++) cumulative[k + 1] = cumulative[k] + lengths[k];
  const total = cumulative[GRID];
  return {
    scale: (t) => {
      let s = 0;
      for (const [lo, hi] of intervals) s += Math.max(0, Math.min(hi, t) - lo);
      return s / total;
    },
    logRatio: (t) => {
      const x = (t - l0) / dl;
      const k = Math.min(GRID - 1, Math.max(0, Math.floor(x)));
      return (cumulative[k] + (x - k) * lengths[k]) / total;
    },
  };
}

/** Kolmogorov-Smirnov statistic of a sample against a continuous CDF. */
function ks(sample: number[], cdf: (t: number) => number): number {
  const s = [...sample].sort((a, b) => a - b);
  let d = 0;
  s.forEach((t, i) => {
    const f = cdf(t);
    d = Math.max(d, Math.abs(f - i / s.length), Math.abs((i + 1) / s.length - f));
  });
  return d;
}

/** KS critical value at alpha = 0.001. */
const ksCritical = (n: number) => 1.95 / Math.sqrt(n);

const LAWS: [string, Law][] = [
  ["strong 32x32", { h: 32, w: 32, ...bounds(PRESETS.strong) }],
  ["weak 28x28", { h: 28, w: 28, ...bounds(PRESETS.weak) }],
  ["strong 20x40 (non-square)", { h: 20, w: 40, ...bounds(PRESETS.strong) }],
  ["wide ratios (0.2, 5) on 32x32", {
    h: 32,
    w: 32,
    scaleMin: 0.3,
    scaleMax: 1,
    ratioMin: 0.2,
    ratioMax: 5,
  }],
];

function bounds(p: Law | typeof PRESETS.strong) {
  return {
    scaleMin: p.scaleMin,
    scaleMax: p.scaleMax,
    ratioMin: p.ratioMin,
    ratioMax: p.ratioMax,
  };
}

/** torchvision's fallback box (top, left, height, width). */
function centreCrop(law: Law): number[] {
  const inRatio = law.w / law.h;
  let w = law.w, h = law.h;
  if (inRatio < law.ratioMin) h = roundHalfEven(w / law.ratioMin);
  else if (inRatio > law.ratioMax) w = roundHalfEven(h * law.ratioMax);
  return [Math.floor((law.h - h) / 2), Math.floor((law.w - w) / 2), h, w];
}

for (const [name, law] of LAWS) {
  Deno.test(`crop boxes, ${name}: inside, rounded from the draw, within the bounds`, () => {
    const area = law.h * law.w;
    let fallbacks = 0;
    for (const d of draws(law, 1)) {
      assert.ok(d.top >= 0 && d.left >= 0 && d.height >= 1 && d.width >= 1);
      assert.ok(d.top + d.height <= law.h && d.left + d.width <= law.w, JSON.stringify(d));
      assert.ok(Number.isInteger(d.top) && Number.isInteger(d.left));
      if (d.fallback) {
        fallbacks++;
        assert.deepEqual([d.top, d.left, d.height, d.width], centreCrop(law));
        continue;
      }
      // The raw draw lies in the bounds and the box is its rounding.
      assert.ok(d.scale >= law.scaleMin && d.scale <= law.scaleMax);
      assert.ok(d.logRatio >= Math.log(law.ratioMin) && d.logRatio <= Math.log(law.ratioMax));
      assert.equal(d.width, roundHalfEven(Math.sqrt(d.scale * area * Math.exp(d.logRatio))));
      assert.equal(d.height, roundHalfEven(Math.sqrt(d.scale * area / Math.exp(d.logRatio))));
      // From the box alone: some (area, ratio) in bounds rounds to it.
      const [w, h] = [d.width, d.height];
      assert.ok((w - 0.5) * (h - 0.5) <= law.scaleMax * area + 1e-9, JSON.stringify(d));
      assert.ok((w + 0.5) * (h + 0.5) >= law.scaleMin * area - 1e-9, JSON.stringify(d));
      assert.ok((w - 0.5) / (h + 0.5) <= law.ratioMax + 1e-9, JSON.stringify(d));
      assert.ok((w + 0.5) / (h - 0.5) >= law.ratioMin - 1e-9, JSON.stringify(d));
    }
    // 10 failed tries: none in 10,000 for the presets on square images; some where the image or
    // the ratio bounds make large crops fall outside.
    if (law.h === law.w && law.ratioMax < 2) assert.equal(fallbacks, 0);
    else assert.ok(fallbacks > 0 && fallbacks < DRAWS / 10, `${fallbacks}`);
  });

  Deno.test(`crop law, ${name}: KS on area fraction and log ratio of accepted draws`, () => {
    const accepted = draws(law, 2).filter((d) => !d.fallback);
    const cdf = conditionalCdfs(law);
    const limit = ksCritical(accepted.length);
    const dScale = ks(accepted.map((d) => d.scale), cdf.scale);
    const dRatio = ks(accepted.map((d) => d.logRatio), cdf.logRatio);
    assert.ok(dScale < limit, `scale: D = ${dScale} >= ${limit}`);
    assert.ok(dRatio < limit, `log ratio: D = ${dRatio} >= ${limit}`);
    // Top and left are uniform on their ranges: their relative position averages 1/2.
    const rel = accepted.filter((d) => d.height < law.h).map((d) => d.top / (law.h - d.height));
    const mean = rel.reduce((a, b) => a + b, 0) / rel.length;
    assert.ok(Math.abs(mean - 0.5) < 0.02, `top position mean ${mean}`);
  });
}

Deno.test("the KS test has power: the accepted law differs from the raw uniform on 32x32", () => {
  const law = LAWS[0][1];
  const accepted = draws(law, 2).filter((d) => !d.fallback);
  const uniform = (t: number) => (t - law.scaleMin) / (law.scaleMax - law.scaleMin);
  const d = ks(accepted.map((x) => x.scale), uniform);
  assert.ok(d > ksCritical(accepted.length), `D = ${d}`);
});

Deno.test("centre-crop fallback: the whole image cut to the nearest ratio bound, centred", () => {
  const tall = draws({ h: 32, w: 32, scaleMin: 0.9, scaleMax: 1, ratioMin: 2, ratioMax: 3 }, 3, 50);
  for (const d of tall) {
    assert.ok(d.fallback);
    assert.deepEqual([d.top, d.left, d.height, d.width], [8, 0, 16, 32]);
  }
  const narrow = draws(
    { h: 32, w: 32, scaleMin: 0.95, scaleMax: 1, ratioMin: 0.25, ratioMax: 0.4 },
    3,
    50,
  );
  for (const d of narrow) {
    assert.ok(d.fallback);
    assert.deepEqual([d.top, d.left, d.height, d.width], [0, 9, 32, 13]);
  }
  // Within the ratio bounds the fallback is the whole image: on 20x22 with scale 1, only ratios
  // near 1.05 round into the image, so some draws fall back.
  let fallbacks = 0;
  for (let k = 0; k < 50; k++) {
    const d = sampleCrop(new Rng(k, "fallback"), 20, 22, 1, 1, 0.9, 1.3, emptyCrop());
    if (!d.fallback) continue;
    fallbacks++;
    assert.deepEqual([d.top, d.left, d.height, d.width], [0, 0, 20, 22]);
  }
  assert.ok(fallbacks > 0, `${fallbacks}`);
});

Deno.test("Python's round: halves to even", () => {
  assert.deepEqual([0.5, 1.5, 2.5, 3.5, 2.4999, 2.5001, 7].map(roundHalfEven), [
    0,
    2,
    2,
    4,
    2,
    3,
    7,
  ]);
});

Deno.test("scale 1 and ratio 1 give the whole square image", () => {
  for (let k = 0; k < 100; k++) {
    const d = sampleCrop(new Rng(k, "x"), 28, 28, 1, 1, 1, 1, emptyCrop());
    assert.deepEqual([d.top, d.left, d.height, d.width, d.fallback], [0, 0, 28, 28, false]);
  }
});

Deno.test("view law: probabilities, uniform jitter order, factor ranges (weak and strong)", () => {
  for (const name of ["weak", "strong"] as const) {
    const law = PRESETS[name];
    const plan = emptyPlan();
    const crop = emptyCrop();
    let flips = 0, jitters = 0, grays = 0, blurs = 0;
    const orders = new Map<string, number>();
    for (let k = 0; k < DRAWS; k++) {
      sampleView(law, new Rng(9, "augment-test", "view", k), 32, 32, plan, crop);
      if (plan.flip) flips++;
      if (plan.gray) grays++;
      if (plan.blurSigma > 0) {
        blurs++;
        assert.ok(plan.blurSigma >= law.blurSigmaMin && plan.blurSigma <= law.blurSigmaMax);
      }
      if (plan.jitterCount > 0) {
        jitters++;
        assert.equal(plan.jitterCount, 4);
        const order = Array.from(plan.jitterOps).join("");
        orders.set(order, (orders.get(order) ?? 0) + 1);
        for (let j = 0; j < 4; j++) {
          const f = plan.jitterFactors[j];
          const op = plan.jitterOps[j];
          const x = [law.brightness, law.contrast, law.saturation, law.hue][op];
          if (op === 3) assert.ok(f >= -x && f <= x);
          else assert.ok(f >= Math.max(0, 1 - x) && f <= 1 + x);
        }
      }
    }
    // Binomial counts within 4.5 standard deviations.
    const near = (count: number, p: number, what: string) => {
      const sd = Math.sqrt(DRAWS * p * (1 - p));
      assert.ok(Math.abs(count - DRAWS * p) < 4.5 * sd + 1e-9, `${name} ${what}: ${count}`);
    };
    near(flips, law.flipP, "flips");
    near(jitters, law.jitterP, "jitters");
    near(grays, law.grayP, "grays");
    near(blurs, law.blurP, "blurs");
    // All 24 orders, each near jitters / 24 (chi-square, 23 dof, p = 0.001 at 49.7).
    assert.equal(orders.size, 24);
    const expected = jitters / 24;
    let chi = 0;
    for (const c of orders.values()) chi += (c - expected) ** 2 / expected;
    assert.ok(chi < 49.7, `order chi-square ${chi}`);
  }
});

Deno.test("jitter strength 0 turns an op off; probability 0 and 1 never and always", () => {
  const law = {
    ...PRESETS.weak,
    brightness: 0,
    hue: 0,
    jitterP: 1,
    flipP: 0,
    grayP: 1,
    blurP: 0,
  };
  const plan = emptyPlan();
  for (let k = 0; k < 200; k++) {
    sampleView(law, new Rng(k, "augment-test", "off"), 28, 28, plan, emptyCrop());
    assert.equal(plan.jitterCount, 2);
    const ops = Array.from(plan.jitterOps.subarray(0, 2)).sort();
    assert.deepEqual(ops, [1, 2]);
    assert.equal(plan.flip, false);
    assert.equal(plan.gray, true);
    assert.equal(plan.blurSigma, 0);
  }
});
