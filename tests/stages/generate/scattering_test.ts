// The scattering feature map against its construction: the channel count 1 + J L + L^2 J (J-1)/2
// (81 at J = 2, L = 8 on a 7 x 7 grid for 28 x 28); the features are the transform's channel
// means (the averaging image w is the adjoint of low-pass, subsample, average); they are exactly
// invariant to periodic shifts by 2^J and the low-passed transform moves far less than the pixels
// under a one-pixel shift; and the exact gradients (drift, K_t, r_t) equal central finite
// differences in float64.

import assert from "node:assert/strict";
import { Rng } from "../../../core/rng.ts";
import {
  Scattering,
  scatteringChannels,
  scatteringFeatures,
} from "../../../stages/generate/scattering.ts";
import { interpolant } from "../../../stages/generate/interpolant/schedule.ts";
import { loadEmbeddedMnist } from "../../../stages/load/mnist.ts";

const norm = (a: ArrayLike<number>) => Math.sqrt(Array.from(a).reduce((s, v) => s + v * v, 0));

/** A periodic shift of an h x w image by (du, dv). */
function shift(x: Float64Array, h: number, w: number, du: number, dv: number) {
  const out = new Float64Array(h * w);
  for (let a = 0; a < h; a++) {
    for (let b = 0; b < w; b++) out[((a + du) % h) * w + ((b + dv) % w)] = x[a * w + b];
  }
  return out;
}

async function digit(): Promise<Float64Array> {
  const mnist = await loadEmbeddedMnist();
  return Float64Array.from(mnist.images.subarray(0, 784));
}

Deno.test("scattering: 1 + J L + L^2 J (J-1)/2 channels, 81 on a 7 x 7 grid at J = 2, L = 8", async () => {
  assert.equal(scatteringChannels(2, 8), 81);
  assert.equal(scatteringChannels(1, 8), 9);
  assert.equal(scatteringChannels(3, 4), 1 + 12 + 16 * 3);
  // 28 is not a multiple of 2^3: one line naming the option, not a ragged grid.
  assert.throws(
    () => new Scattering(28, 28, 3, 8),
    /generate\.params\.scales: 28 x 28 .* 2\^J = 8/,
  );
  const s = new Scattering(28, 28, 2, 8);
  const x = await digit();
  const maps = s.transform(x);
  assert.equal(maps.length, 81);
  for (const m of maps) assert.equal(m.length, 49);
  // The features are the channel means of the transform: w is the adjoint of what transform does.
  const phi = s.features(s.forward(x), new Float64Array(81));
  maps.forEach((m, i) => {
    const mean = m.reduce((a, v) => a + v, 0) / m.length;
    assert.ok(Math.abs(phi[i] - mean) < 1e-12 * (1 + Math.abs(mean)), `channel ${i}`);
  });
  // S0's mean is the pixel mean (phi^(0) = 1, the subsampled grid averages a period-4 image).
  assert.ok(Math.abs(phi[0] - x.reduce((a, v) => a + v, 0) / 784) < 1e-3);
});

Deno.test("scattering: shift-invariant features and a transform stable to a one-pixel shift", async () => {
  const s = new Scattering(28, 28, 2, 8);
  const x = await digit();
  const phi = s.features(s.forward(x), new Float64Array(81));
  const moved = s.features(s.forward(shift(x, 28, 28, 4, 8)), new Float64Array(81));
  for (let i = 0; i < 81; i++) assert.ok(Math.abs(phi[i] - moved[i]) < 1e-10, `channel ${i}`);
  // One pixel: the pixels change by a large share of their norm, the low-passed channels little.
  const y = shift(x, 28, 28, 1, 1);
  const pixels = norm(x.map((v, i) => v - y[i])) / norm(x);
  const sx = s.transform(x).flatMap((m) => Array.from(m));
  const sy = s.transform(y).flatMap((m) => Array.from(m));
  const channels = norm(sx.map((v, i) => v - sy[i])) / norm(sx);
  assert.ok(pixels > 0.5, `pixels ${pixels}`);
  assert.ok(channels < pixels / 3, `transform ${channels} vs pixels ${pixels}`);
});

Deno.test("scattering: drift, K_t and r_t equal central finite differences in float64", () => {
  const h = 8, w = 8, d = h * w;
  const map = scatteringFeatures(h, w, 2, 4);
  const s = new Scattering(h, w, 2, 4);
  const p = map.p;
  assert.equal(p, 1 + 8 + 16);
  const rng = new Rng(0, "scattering-fd");
  const n = 2;
  const x = Float64Array.from({ length: n * d }, () => rng.uniform());
  const dI = Float64Array.from({ length: n * d }, () => rng.normal());
  const eta = Float64Array.from({ length: p }, () => rng.normal());
  const features = (z: Float64Array) => s.features(s.forward(z), new Float64Array(p));
  // The Jacobian by central differences, [n][P x d].
  const step = 1e-6;
  const jac = Array.from({ length: n }, (_, q) => {
    const g = new Float64Array(p * d);
    for (let v = 0; v < d; v++) {
      const plus = x.slice(q * d, (q + 1) * d), minus = plus.slice();
      plus[v] += step;
      minus[v] -= step;
      const fp = features(plus), fm = features(minus);
      for (let i = 0; i < p; i++) g[i * d + v] = (fp[i] - fm[i]) / (2 * step);
    }
    return g;
  });
  const c = interpolant({ schedule: "linear", gamma: "none" }).at(0.5);
  const drift = new Float64Array(n * d);
  map.drift(c, eta, x, n, drift);
  const { k, r } = map.fit(c, x, dI, n);
  let worst = 0;
  for (let q = 0; q < n; q++) {
    for (let v = 0; v < d; v++) {
      let e = 0;
      for (let i = 0; i < p; i++) e += eta[i] * jac[q][i * d + v];
      worst = Math.max(worst, Math.abs(e - drift[q * d + v]));
    }
  }
  for (let i = 0; i < p; i++) {
    let ri = 0;
    for (let q = 0; q < n; q++) {
      for (let v = 0; v < d; v++) ri += (jac[q][i * d + v] * dI[q * d + v]) / n;
    }
    worst = Math.max(worst, Math.abs(ri - r[i]));
    for (let l = 0; l < p; l++) {
      let kil = 0;
      for (let q = 0; q < n; q++) {
        for (let v = 0; v < d; v++) kil += (jac[q][i * d + v] * jac[q][l * d + v]) / n;
      }
      worst = Math.max(worst, Math.abs(kil - k[i * p + l]));
    }
  }
  assert.ok(worst < 1e-6, `largest gap ${worst}`);
  assert.ok(norm(drift) > 1e-3, "a non-trivial drift");
});
