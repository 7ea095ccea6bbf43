// Kernelized stochastic interpolants (seed 003, Coeurdoux, Lempereur et al. 2026): the drift is
// restricted to the span of P feature gradients, b^_t(x) = grad(phi)(x)^T eta_t, with eta_t the
// least-squares fit to the interpolant's velocity (their Prop. 2.1),
//   K_t eta_t = r_t,  K_t = E[grad(phi)(I_t) grad(phi)(I_t)^T],  r_t = E[grad(phi)(I_t) dI_t/dt],
// I_t = alpha z + beta a, estimated by plug-in means over n pairs (z, a) on the sampler's time grid
// before generation and reused for every sample. P does not depend on the data dimension. Feature
// maps:
//   rff     phi_i = cos(omega_i . x + c_i), omega_i ~ N(0, I / l^2), c_i ~ U[0, 2 pi): grad phi_i =
//           -sin(omega_i . x + c_i) omega_i, so K = (s s^T) o (Omega Omega^T) per pair, O(P d + P^2).
//   fields  grad phi_k = b*_k, the exact closed-form velocity of the k-th of P disjoint subsets of
//           the training set, with eta fitted on pairs from a held-out split (fitted on the fields'
//           own data the least squares would select the memorizing full-data field). Per NFE the
//           P fields cost one exact field of the whole set, N d.
//   wavelet phi_i = a scattering channel's mean over the image (scattering.ts): P = 81 for J = 2,
//           L = 8 whatever d, gradients exact by the transform's backward pass.
// Sampling: the SDE dX = (b + D s) dt + sqrt(2 D) dW with the paper's optimal D*_t = alpha w / beta
// (w = alpha beta' - alpha' beta; infinite at t = 0, zero at t = 1) and s from the exact drift-score
// relation, which makes the drift 2 b - (beta' / beta) X. In beta X it reads d(beta X) = 2 beta b dt
// + sqrt(2 alpha beta w) dW, integrated by the trapezoid with b frozen at t_k:
//   X_{k+1} = [beta_k X_k + h (beta_k + beta_{k+1}) b_k + sqrt(h (abw_k + abw_{k+1})) xi] / beta_{k+1},
// which never divides by beta_k, so t = 0 needs no clipping; or the ODE dX = b dt by Euler.

import { map } from "rxjs";
import { imageSize, makeBatch, sampleIds } from "../../core/batch.ts";
import type { Batch, Dataset } from "../../core/batch.ts";
import { SiaError } from "../../core/errors.ts";
import { solveSpd } from "../../core/linalg.ts";
import { Rng } from "../../core/rng.ts";
import { defineGenerator } from "../../core/stage.ts";
import type { GeneratorContext } from "../../core/stage.ts";
import type { Resolved } from "../../core/schema.ts";
import { denoiserFrom } from "./interpolant/prediction.ts";
import { scatteringChannels, scatteringFeatures } from "./scattering.ts";
import { classGroups, groupByLabel } from "../load/dataset.ts";
import { exactDenoise } from "./interpolant/field.ts";
import type { Points } from "./interpolant/field.ts";
import { interpolant, SCHEDULES } from "./interpolant/schedule.ts";
import type { Coefficients, Interpolant } from "./interpolant/schedule.ts";

export const FEATURE_MAPS = ["fields", "rff", "wavelet"] as const;

const params = {
  schedule: { type: "enum", values: SCHEDULES, default: "linear", doc: "alpha, beta family" },
  sigmaMin: { type: "number", above: 0, max: 1, default: 1e-3, doc: "alpha(1) of linear-smin" },
  features: {
    type: "enum",
    values: FEATURE_MAPS,
    default: "fields",
    doc: "fields: closed-form fields of disjoint subsets; rff: random Fourier features; " +
      "wavelet: scattering moduli averaged over the image (P = 1 + J L + L^2 J (J - 1) / 2)",
  },
  p: { type: "int", min: 1, default: 8, doc: "P: fields (disjoint subsets) or Fourier features" },
  scales: { type: "int", min: 1, max: 4, default: 2, doc: "wavelet: J, scales 2^0 .. 2^(J-1)" },
  orientations: { type: "int", min: 1, max: 16, default: 8, doc: "wavelet: L orientations" },
  bandwidth: {
    type: "number",
    above: 0,
    default: null,
    doc: "rff: length scale l of omega ~ N(0, I / l^2) (default sqrt(d) / 2)",
  },
  holdout: {
    type: "number",
    min: 0,
    max: 0.9,
    default: 0.25,
    doc: "fields: share of each class held out to fit eta (0: fit on the fields' own data)",
  },
  pairs: { type: "int", min: 1, default: 256, doc: "n: pairs (z, a) per time node for K_t, r_t" },
  steps: { type: "int", min: 1, default: 50, doc: "time steps on the uniform grid (= NFE)" },
  sampler: {
    type: "enum",
    values: ["sde", "ode"],
    default: "sde",
    doc: "sde: optimal D*_t with the integrating-factor trapezoid; ode: dX = b dt by Euler",
  },
  ridge: {
    type: "number",
    min: 0,
    default: 1e-6,
    doc: "ridge lambda tr(K_t) / P added to K_t's diagonal",
  },
  conditional: { type: "boolean", default: true, doc: "one fit per class, samples of its class" },
} as const;

/** A feature map through what the method needs: the fit's statistics and the drift. */
export interface FeatureMap {
  readonly p: number;
  readonly d: number;
  /** K_t (P x P) and r_t (P) as plug-in means over the n states I with velocities dI. */
  fit(c: Coefficients, states: Float64Array, velocities: Float64Array, n: number): {
    k: Float64Array;
    r: Float64Array;
  };
  /** b^ = grad(phi)(x)^T eta for b queries, into out. */
  drift(c: Coefficients, eta: Float64Array, x: Float64Array, b: number, out: Float64Array): void;
}

/** Random Fourier features cos(omega . x + c). */
export function fourierFeatures(p: number, d: number, scale: number, rng: Rng): FeatureMap {
  const omega = Float64Array.from({ length: p * d }, () => rng.normal() / scale);
  const phase = Float64Array.from({ length: p }, () => 2 * Math.PI * rng.uniform());
  const gram = new Float64Array(p * p);
  for (let i = 0; i < p; i++) {
    for (let l = 0; l <= i; l++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += omega[i * d + j] * omega[l * d + j];
      gram[i * p + l] = gram[l * p + i] = s;
    }
  }
  const sines = (x: Float64Array, q: number, out: Float64Array) => {
    for (let i = 0; i < p; i++) {
      let s = phase[i];
      for (let j = 0; j < d; j++) s += omega[i * d + j] * x[q * d + j];
      out[i] = Math.sin(s);
    }
  };
  const s = new Float64Array(p);
  return {
    p,
    d,
    fit(_c, states, velocities, n) {
      const k = new Float64Array(p * p);
      const r = new Float64Array(p);
      for (let q = 0; q < n; q++) {
        sines(states, q, s);
        for (let i = 0; i < p; i++) {
          let dot = 0;
          for (let j = 0; j < d; j++) dot += omega[i * d + j] * velocities[q * d + j];
          r[i] -= (s[i] * dot) / n;
          for (let l = 0; l <= i; l++) k[i * p + l] += (s[i] * s[l] * gram[i * p + l]) / n;
        }
      }
      for (let i = 0; i < p; i++) for (let l = 0; l < i; l++) k[l * p + i] = k[i * p + l];
      return { k, r };
    },
    drift(_c, eta, x, b, out) {
      out.fill(0);
      for (let q = 0; q < b; q++) {
        sines(x, q, s);
        for (let i = 0; i < p; i++) {
          const w = -eta[i] * s[i];
          for (let j = 0; j < d; j++) out[q * d + j] += w * omega[i * d + j];
        }
      }
    },
  };
}

/** The exact velocity b* of each subset at the b states x: [P][b * d]. */
function subsetVelocities(subsets: readonly Points[], c: Coefficients, x: Float64Array, b: number) {
  const ratio = c.sigmaSigmaDot / c.sigma2;
  return subsets.map((points) => {
    const { m } = exactDenoise(points, x, b, c.beta, c.sigma2);
    for (let j = 0; j < m.length; j++) m[j] = c.betaDot * m[j] + ratio * (x[j] - c.beta * m[j]);
    return m;
  });
}

/** The closed-form fields of P disjoint training subsets as the feature gradients. */
export function fieldFeatures(subsets: readonly Points[]): FeatureMap {
  const p = subsets.length;
  const d = subsets[0].d;
  return {
    p,
    d,
    fit(c, states, velocities, n) {
      const fields = subsetVelocities(subsets, c, states, n);
      const k = new Float64Array(p * p);
      const r = new Float64Array(p);
      for (let i = 0; i < p; i++) {
        for (let j = 0; j < n * d; j++) r[i] += (fields[i][j] * velocities[j]) / n;
        for (let l = 0; l <= i; l++) {
          let s = 0;
          for (let j = 0; j < n * d; j++) s += fields[i][j] * fields[l][j];
          k[i * p + l] = k[l * p + i] = s / n;
        }
      }
      return { k, r };
    },
    drift(c, eta, x, b, out) {
      const fields = subsetVelocities(subsets, c, x, b);
      out.fill(0);
      for (let i = 0; i < p; i++) for (let j = 0; j < b * d; j++) out[j] += eta[i] * fields[i][j];
    },
  };
}

/** eta_t at each node of the grid, from n pairs (z_j, a_j) shared by every node. */
export function fitEtas(
  interp: Interpolant,
  map: FeatureMap,
  grid: Float64Array,
  data: Points,
  n: number,
  ridge: number,
  rng: Rng,
): Float64Array[] {
  const d = map.d;
  const z = Float64Array.from({ length: n * d }, () => rng.normal());
  const a = new Float64Array(n * d);
  for (let q = 0; q < n; q++) {
    const i = rng.int(data.n);
    for (let j = 0; j < d; j++) a[q * d + j] = data.y[i * d + j];
  }
  const states = new Float64Array(n * d);
  const velocities = new Float64Array(n * d);
  return Array.from(grid, (t) => {
    const c = interp.at(t);
    for (let j = 0; j < n * d; j++) {
      states[j] = c.alpha * z[j] + c.beta * a[j];
      velocities[j] = c.alphaDot * z[j] + c.betaDot * a[j];
    }
    const { k, r } = map.fit(c, states, velocities, n);
    let trace = 0;
    for (let i = 0; i < map.p; i++) trace += k[i * map.p + i];
    return solveSpd(k, r, map.p, (ridge * trace) / map.p);
  });
}

/** alpha beta w with w = alpha beta' - alpha' beta: zero where alpha is (t = 1), alpha' or not. */
function alphaBetaW(c: Coefficients): number {
  return c.alpha === 0 ? 0 : c.alpha * c.beta * (c.alpha * c.betaDot - c.alphaDot * c.beta);
}

/**
 * Integrates b queries from x at grid[0] to grid[steps]: the D* trapezoid (sde) or Euler (ode).
 * `drift(k, x, out)` is b^ at grid[k]; noise[q] draws query q's Gaussian increments.
 */
export function integrateKernel(
  interp: Interpolant,
  grid: Float64Array,
  x: Float64Array,
  b: number,
  sde: boolean,
  drift: (k: number, x: Float64Array, out: Float64Array) => void,
  noise: readonly Rng[],
): Float64Array {
  const d = x.length / b;
  const v = new Float64Array(x.length);
  for (let k = 0; k + 1 < grid.length; k++) {
    const h = grid[k + 1] - grid[k];
    drift(k, x, v);
    if (!sde) {
      for (let j = 0; j < x.length; j++) x[j] += h * v[j];
      continue;
    }
    const c = interp.at(grid[k]);
    const c2 = interp.at(grid[k + 1]);
    const scale = Math.sqrt(Math.max(0, h * (alphaBetaW(c) + alphaBetaW(c2))));
    const weight = h * (c.beta + c2.beta);
    for (let q = 0; q < b; q++) {
      for (let j = q * d; j < (q + 1) * d; j++) {
        x[j] = (c.beta * x[j] + weight * v[j] + scale * noise[q].normal()) / c2.beta;
      }
    }
  }
  return x;
}

/** Training points of one class (or all), as the fields see them. */
function pointsAt(train: Dataset, positions: readonly number[]): Points {
  const d = imageSize(train.shape);
  const y = new Float32Array(positions.length * d);
  positions.forEach((p, j) => y.set(train.images.subarray(p * d, (p + 1) * d), j * d));
  return { y, n: positions.length, d };
}

/**
 * One class's feature map and the data its eta is fitted on (for fields: disjoint subsets of the
 * class minus a held-out share, which is the fit data), and eta fitted at the given times.
 */
function fitClass(
  p: Resolved<typeof params>,
  { seed, train }: GeneratorContext,
  interp: Interpolant,
  label: number,
  times: Float64Array,
): { features: FeatureMap; etas: Float64Array[] } {
  const d = imageSize(train.shape);
  const positions = p.conditional
    ? groupByLabel(train.labels).get(label)
    : [...Array(train.shape[0]).keys()];
  if (!positions) throw new Error(`kernel: no training images of class ${label}`);
  const rng = new Rng(seed, "kernel-fit", label);
  let features: FeatureMap;
  let fitData: Points;
  if (p.features === "rff") {
    const scale = p.bandwidth ?? Math.sqrt(d) / 2;
    features = fourierFeatures(p.p, d, scale, new Rng(seed, "kernel-rff"));
    fitData = pointsAt(train, positions);
  } else if (p.features === "wavelet") {
    if (train.shape[3] !== 1) {
      throw new SiaError(
        `generate.params.features: wavelet needs one channel, not ${train.shape[3]}`,
      );
    }
    features = scatteringFeatures(train.shape[1], train.shape[2], p.scales, p.orientations);
    fitData = pointsAt(train, positions);
  } else {
    const order = Array.from(rng.permutation(positions.length), (i) => positions[i]);
    const held = Math.round(p.holdout * order.length);
    const rest = order.slice(held);
    if (rest.length < p.p || (p.holdout > 0 && held < 1)) {
      throw new SiaError(
        `generate.params.p: class ${label} has ${positions.length} training images, too few ` +
          `for ${p.p} fields and a held-out share of ${p.holdout}`,
      );
    }
    const subsets = Array.from(
      { length: p.p },
      (_, k) => pointsAt(train, rest.filter((_, i) => i % p.p === k)),
    );
    features = fieldFeatures(subsets);
    fitData = pointsAt(train, held > 0 ? order.slice(0, held) : rest);
  }
  return { features, etas: fitEtas(interp, features, times, fitData, p.pairs, p.ridge, rng) };
}

export const kernel = defineGenerator({
  name: "kernel",
  summary: "kernelized stochastic interpolant: drift grad(phi)^T eta_t fitted by P x P solves",
  provenance: "generated",
  params,
  create(p, context) {
    const { seed, train } = context;
    const interp = interpolant({ schedule: p.schedule, gamma: "none", sigmaMin: p.sigmaMin });
    const d = imageSize(train.shape);
    const grid = Float64Array.from({ length: p.steps + 1 }, (_, k) => k / p.steps);
    let precomputeSeconds = 0;
    const featureCount = p.features === "wavelet"
      ? scatteringChannels(p.scales, p.orientations)
      : p.p;
    context.report({
      features: p.features,
      p: featureCount,
      pairs: p.pairs,
      nfePerSample: p.steps,
    });

    /** The feature map and eta grid of one class, fitted on first use. */
    const fits = new Map<number, { features: FeatureMap; etas: Float64Array[] }>();
    function fitFor(label: number) {
      const key = p.conditional ? label : 0;
      const known = fits.get(key);
      if (known) return known;
      const t0 = performance.now();
      const fit = fitClass(p, context, interp, key, grid.subarray(0, p.steps));
      precomputeSeconds += (performance.now() - t0) / 1000;
      context.report({ precomputeSeconds });
      fits.set(key, fit);
      return fit;
    }

    let produced = 0;
    function generate(anchors: Batch): Batch {
      const n = anchors.shape[0];
      const images = new Float32Array(n * d);
      const ids = sampleIds(anchors, produced);
      produced += n;
      const byClass = classGroups(anchors.labels, p.conditional);
      for (const [label, members] of byClass) {
        const { features, etas } = fitFor(label);
        const b = members.length;
        const x = new Float64Array(b * d);
        const noise = members.map((j, q) => {
          const start = new Rng(seed, "closed-form-x0", ids[j]);
          for (let v = 0; v < d; v++) x[q * d + v] = start.normal();
          return new Rng(seed, "closed-form-sde", ids[j]);
        });
        const drift = (k: number, y: Float64Array, out: Float64Array) =>
          features.drift(interp.at(grid[k]), etas[k], y, b, out);
        integrateKernel(interp, grid, x, b, p.sampler === "sde", drift, noise);
        members.forEach((j, q) => images.set(x.subarray(q * d, (q + 1) * d), j * d));
      }
      return makeBatch({
        images,
        shape: anchors.shape,
        labels: p.conditional ? anchors.labels.slice() : new Int32Array(n).fill(-1),
        ids,
        provenance: "generated",
        generator: "kernel",
      });
    }
    return map(generate);
  },
  denoiser(p, context) {
    // m from the fitted drift, b = beta' m + (alpha' / alpha)(x - beta m), eta fitted at t itself.
    const interp = interpolant({ schedule: p.schedule, gamma: "none", sigmaMin: p.sigmaMin });
    const d = imageSize(context.train.shape);
    return {
      coefficients: (t) => interp.at(t),
      denoise(t, x, labels) {
        const c = interp.at(t);
        const out = new Float64Array(x.length);
        const byClass = classGroups(labels, p.conditional);
        for (const [label, members] of byClass) {
          const { features, etas } = fitClass(p, context, interp, label, Float64Array.of(t));
          const b = members.length;
          const xs = new Float64Array(b * d);
          members.forEach((j, q) => xs.set(x.subarray(j * d, (j + 1) * d), q * d));
          const velocity = new Float64Array(b * d);
          features.drift(c, etas[0], xs, b, velocity);
          const m = denoiserFrom("velocity", c, xs, velocity, new Float64Array(b * d));
          members.forEach((j, q) => out.set(m.subarray(q * d, (q + 1) * d), j * d));
        }
        return Promise.resolve(out);
      },
    };
  },
});
