// The noise generator, y + r * U(ball) + s * N(0, I) with y an anchor or a Dirichlet mix of it and
// its k nearest training neighbours: each term's law checked on its own (the ball radius against
// P(|e| <= rho) = (rho / r)^d by a Kolmogorov-Smirnov bound, the Gaussian's moments, the mixing
// weights by reconstruction), the bookkeeping of every output, and byte-identical output however
// the anchors are batched. Seeds are fixed, so a pass is a pass forever.

import assert from "node:assert/strict";
import { from, lastValueFrom, toArray } from "rxjs";
import { Rng } from "../../../core/rng.ts";
import { imageSize, Provenance } from "../../../core/batch.ts";
import type { Batch, Dataset, Shape } from "../../../core/batch.ts";
import { resolveSection } from "../../../core/schema.ts";
import { noise } from "../../../stages/generate/noise.ts";
import { makeDataset } from "../../../stages/load/dataset.ts";
import { anchorBatches } from "../../../stages/load/source.ts";

interface Params {
  r: number;
  s: number;
  k: number;
  clip: boolean;
}

/** A training set of random images on [lo, hi), labels i mod 10, ids 100 + 3 i (not positions). */
function trainingSet(
  n: number,
  h: number,
  w: number,
  c: number,
  seed = 1,
  lo = 0,
  hi = 1,
): Dataset {
  const rng = new Rng(seed, "noise-test", "train");
  const shape: Shape = [n, h, w, c];
  const images = new Float32Array(n * h * w * c);
  for (let i = 0; i < images.length; i++) images[i] = lo + (hi - lo) * rng.uniform();
  const labels = Int32Array.from({ length: n }, (_, i) => i % 10);
  const ids = Int32Array.from({ length: n }, (_, i) => 100 + 3 * i);
  return makeDataset("noise-test", images, shape, labels, ids);
}

/** Runs the noise operator over the anchor batches; returns the output batches. */
function generate(
  params: Partial<Params>,
  train: Dataset,
  anchors: Batch[],
  seed = 0,
): Promise<Batch[]> {
  const resolved = resolveSection(noise.params, params, "generate.params.");
  const operator = noise.create(resolved, { seed, train, report: () => {} });
  return lastValueFrom(from(anchors).pipe(operator, toArray()));
}

function anchorsOf(train: Dataset, count: number, batchSize: number, seed = 5): Batch[] {
  return [...anchorBatches(train, count, batchSize, seed)];
}

function concat(batches: Batch[], field: "images"): Float32Array;
function concat(batches: Batch[], field: "labels" | "ids"): Int32Array;
function concat(batches: Batch[], field: "images" | "labels" | "ids"): Float32Array | Int32Array {
  const total = batches.reduce((s, b) => s + b[field].length, 0);
  const out = field === "images" ? new Float32Array(total) : new Int32Array(total);
  let at = 0;
  for (const b of batches) {
    out.set(b[field], at);
    at += b[field].length;
  }
  return out;
}

function bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** The noise e = output - anchor per image, in float64. */
function residuals(out: Float32Array, anchors: Float32Array): Float64Array {
  return Float64Array.from(out, (v, i) => v - anchors[i]);
}

/** Kolmogorov-Smirnov statistic of samples against a continuous CDF. */
function ksStatistic(samples: ArrayLike<number>, cdf: (x: number) => number): number {
  const xs = Float64Array.from(samples).sort();
  const n = xs.length;
  let worst = 0;
  for (let i = 0; i < n; i++) {
    const f = cdf(xs[i]);
    worst = Math.max(worst, Math.abs(f - i / n), Math.abs((i + 1) / n - f));
  }
  return worst;
}

/** The KS critical value at significance 1e-6: a correct law fails once in a million seeds. */
function ksBound(n: number): number {
  return Math.sqrt(-Math.log(1e-6 / 2) / (2 * n));
}

// ---------------------------------------------------------------------------------------------
// The ball term

for (const [h, w, c] of [[4, 4, 1], [1, 2, 1], [1, 1, 3]] as const) {
  const d = h * w * c;
  Deno.test(`s = 0, d = ${d}: outputs lie within r of the anchor, radius law (rho/r)^d`, async () => {
    const r = 0.3;
    const count = 4000;
    const train = trainingSet(50, h, w, c);
    const anchors = anchorsOf(train, count, 256);
    const out = await generate({ r, s: 0 }, train, anchors, 42);
    const e = residuals(concat(out, "images"), concat(anchors, "images"));
    const radii = new Float64Array(count);
    for (let j = 0; j < count; j++) {
      let sq = 0;
      for (let v = 0; v < d; v++) sq += e[j * d + v] ** 2;
      radii[j] = Math.sqrt(sq);
      assert.ok(radii[j] <= r + 1e-6, `sample ${j}: |e| = ${radii[j]} > r = ${r}`);
    }
    // P(|e| <= rho) = (rho / r)^d on [0, r].
    const cdf = (rho: number) => Math.min(1, Math.max(0, rho / r)) ** d;
    const D = ksStatistic(radii, cdf);
    assert.ok(D < ksBound(count), `KS statistic ${D} >= ${ksBound(count)}`);
    // A few quantiles by name: the empirical fraction below the q-quantile r q^(1/d).
    for (const q of [0.1, 0.25, 0.5, 0.75, 0.9]) {
      const rho = r * q ** (1 / d);
      const below = radii.filter((x) => x <= rho).length / count;
      const sigma = Math.sqrt(q * (1 - q) / count);
      assert.ok(Math.abs(below - q) < 5 * sigma, `P(|e| <= ${rho}) = ${below}, want ${q}`);
    }
    // Isotropy: each coordinate has mean 0 and E[e_v^2] = r^2 / (d + 2).
    for (let v = 0; v < d; v++) {
      let sum = 0;
      let sq = 0;
      for (let j = 0; j < count; j++) {
        sum += e[j * d + v];
        sq += e[j * d + v] ** 2;
      }
      const variance = r * r / (d + 2);
      assert.ok(Math.abs(sum / count) < 5 * Math.sqrt(variance / count), `mean of value ${v}`);
      // E[e^4] <= r^2 E[e^2], so sd(mean of e^2) <= r sqrt(variance / count).
      assert.ok(
        Math.abs(sq / count - variance) < 5 * r * Math.sqrt(variance / count),
        `second moment of value ${v}: ${sq / count}, want ${variance}`,
      );
    }
  });
}

Deno.test("r = s = 0, k = 0 copies the anchor exactly", async () => {
  const train = trainingSet(20, 4, 4, 1);
  const anchors = anchorsOf(train, 30, 8);
  const out = await generate({ r: 0, s: 0, k: 0 }, train, anchors);
  assert.deepEqual(bytes(concat(out, "images")), bytes(concat(anchors, "images")));
});

// ---------------------------------------------------------------------------------------------
// The Gaussian term

Deno.test("r = 0: per-value noise has mean ~0, std ~s, and Gaussian tail fractions", async () => {
  const s = 0.1;
  const count = 3000;
  const d = 16;
  const train = trainingSet(40, 4, 4, 1);
  const anchors = anchorsOf(train, count, 100);
  const out = await generate({ r: 0, s }, train, anchors, 9);
  const e = residuals(concat(out, "images"), concat(anchors, "images"));
  const n = count * d;
  let sum = 0;
  let sq = 0;
  for (const x of e) sum += x;
  const mean = sum / n;
  for (const x of e) sq += (x - mean) ** 2;
  const variance = sq / (n - 1);
  assert.ok(Math.abs(mean) < 5 * s / Math.sqrt(n), `mean ${mean}`);
  // sd of the sample variance of a normal: s^2 sqrt(2 / (n - 1)).
  assert.ok(
    Math.abs(variance - s * s) < 5 * s * s * Math.sqrt(2 / (n - 1)),
    `std ${Math.sqrt(variance)}, want ${s}`,
  );
  // Fractions within 1, 2 and 3 standard deviations.
  for (const [m, p] of [[1, 0.682689492], [2, 0.954499736], [3, 0.997300204]]) {
    const inside = e.filter((x) => Math.abs(x) <= m * s).length / n;
    assert.ok(Math.abs(inside - p) < 5 * Math.sqrt(p * (1 - p) / n), `within ${m} s: ${inside}`);
  }
  // Values of one image are uncorrelated: neighbouring values' correlation ~0.
  let cross = 0;
  for (let j = 0; j < count; j++) {
    for (let v = 0; v + 1 < d; v++) cross += e[j * d + v] * e[j * d + v + 1];
  }
  const correlation = cross / (count * (d - 1)) / (s * s);
  assert.ok(Math.abs(correlation) < 5 / Math.sqrt(count * (d - 1)), `correlation ${correlation}`);
});

// ---------------------------------------------------------------------------------------------
// The neighbour mix

/** Naive k nearest training positions of training position p (excluding p), by distance. */
function nearestPositions(train: Dataset, p: number, k: number): number[] {
  const d = imageSize(train.shape);
  const all: [number, number][] = [];
  for (let i = 0; i < train.shape[0]; i++) {
    if (i === p) continue;
    let sq = 0;
    for (let v = 0; v < d; v++) sq += (train.images[p * d + v] - train.images[i * d + v]) ** 2;
    all.push([sq, i]);
  }
  all.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return all.slice(0, k).map(([, i]) => i);
}

function positionById(train: Dataset): Map<number, number> {
  return new Map(Array.from(train.ids, (id, p) => [id, p]));
}

Deno.test("k = 1, r = s = 0: each output lies on the segment anchor - nearest neighbour", async () => {
  const train = trainingSet(30, 4, 4, 1, 3);
  const d = 16;
  const count = 600;
  const anchors = anchorsOf(train, count, 64);
  const out = concat(await generate({ r: 0, s: 0, k: 1 }, train, anchors, 2), "images");
  const anchorIds = concat(anchors, "ids");
  const position = positionById(train);
  const ts: number[] = [];
  for (let j = 0; j < count; j++) {
    const p = position.get(anchorIds[j])!;
    const q = nearestPositions(train, p, 1)[0];
    const a = train.images.subarray(p * d, (p + 1) * d);
    const b = train.images.subarray(q * d, (q + 1) * d);
    const y = out.subarray(j * d, (j + 1) * d);
    // Project y - a onto b - a.
    let dot = 0;
    let len = 0;
    for (let v = 0; v < d; v++) {
      dot += (y[v] - a[v]) * (b[v] - a[v]);
      len += (b[v] - a[v]) ** 2;
    }
    const t = dot / len;
    assert.ok(t >= -1e-6 && t <= 1 + 1e-6, `sample ${j}: t = ${t}`);
    for (let v = 0; v < d; v++) {
      assert.ok(Math.abs(y[v] - (a[v] + t * (b[v] - a[v]))) < 1e-5, `sample ${j} off the segment`);
    }
    ts.push(t);
  }
  // Dirichlet(1, 1): the neighbour's weight is uniform on [0, 1].
  const D = ksStatistic(ts, (x) => Math.min(1, Math.max(0, x)));
  assert.ok(D < ksBound(count), `KS statistic of the mixing weight ${D}`);
});

/** Solves the normal equations of min |A w - y| for small A given as columns. */
function leastSquares(columns: Float64Array[], y: Float64Array): Float64Array {
  const m = columns.length;
  const g = Array.from({ length: m }, (_, i) =>
    Array.from({ length: m + 1 }, (_, j) => {
      const other = j < m ? columns[j] : y;
      let s = 0;
      for (let v = 0; v < y.length; v++) s += columns[i][v] * other[v];
      return s;
    }));
  for (let i = 0; i < m; i++) {
    let pivot = i;
    for (let r = i + 1; r < m; r++) if (Math.abs(g[r][i]) > Math.abs(g[pivot][i])) pivot = r;
    [g[i], g[pivot]] = [g[pivot], g[i]];
    for (let r = 0; r < m; r++) {
      if (r === i) continue;
      const f = g[r][i] / g[i][i];
      for (let c = i; c <= m; c++) g[r][c] -= f * g[i][c];
    }
  }
  return Float64Array.from({ length: m }, (_, i) => g[i][m] / g[i][i]);
}

Deno.test("k = 3, r = s = 0: each output is a convex combination of the anchor and its 3 nearest", async () => {
  const train = trainingSet(40, 4, 4, 1, 4);
  const d = 16;
  const k = 3;
  const count = 400;
  const anchors = anchorsOf(train, count, 50);
  const out = concat(await generate({ r: 0, s: 0, k }, train, anchors, 8), "images");
  const anchorIds = concat(anchors, "ids");
  const position = positionById(train);
  const anchorWeights: number[] = [];
  for (let j = 0; j < count; j++) {
    const p = position.get(anchorIds[j])!;
    const near = nearestPositions(train, p, k);
    const a = train.images.subarray(p * d, (p + 1) * d);
    const y = out.subarray(j * d, (j + 1) * d);
    // Bounding box of the k + 1 images.
    for (let v = 0; v < d; v++) {
      const vals = [a[v], ...near.map((q) => train.images[q * d + v])];
      assert.ok(
        y[v] >= Math.min(...vals) - 1e-6 && y[v] <= Math.max(...vals) + 1e-6,
        `sample ${j} value ${v} outside the box`,
      );
    }
    // y - a = sum_m w_m (n_m - a): solve for w, then check the fit and the simplex.
    const columns = near.map((q) =>
      Float64Array.from({ length: d }, (_, v) => train.images[q * d + v] - a[v])
    );
    const target = Float64Array.from({ length: d }, (_, v) => y[v] - a[v]);
    const w = leastSquares(columns, target);
    for (let v = 0; v < d; v++) {
      let fit = 0;
      for (let m = 0; m < k; m++) fit += w[m] * columns[m][v];
      assert.ok(Math.abs(fit - target[v]) < 1e-5, `sample ${j}: residual at value ${v}`);
    }
    const sum = w.reduce((s, x) => s + x, 0);
    for (const x of w) assert.ok(x >= -1e-4, `sample ${j}: negative weight ${x}`);
    assert.ok(sum <= 1 + 1e-4, `sample ${j}: neighbour weights sum to ${sum}`);
    anchorWeights.push(1 - sum);
  }
  // Dirichlet(1, 1, 1, 1): the anchor's weight is Beta(1, 3), CDF 1 - (1 - x)^3.
  const D = ksStatistic(anchorWeights, (x) => 1 - (1 - Math.min(1, Math.max(0, x))) ** 3);
  assert.ok(D < ksBound(count), `KS statistic of the anchor weight ${D}`);
});

Deno.test({
  name: "k >= training size still gives a convex combination (weights sum to 1)",
  async fn() {
    const train = trainingSet(3, 2, 2, 1, 6, 0.5, 1);
    const anchors = anchorsOf(train, 30, 10);
    const out = concat(await generate({ r: 0, s: 0, k: 5 }, train, anchors), "images");
    for (const v of out) assert.ok(v >= 0.5 - 1e-6 && v <= 1, `value ${v} outside [0.5, 1]`);
  },
});

// ---------------------------------------------------------------------------------------------
// Clipping

Deno.test("clip = true keeps every value in [0, 1] and equals the clamped unclipped output", async () => {
  const train = trainingSet(20, 4, 4, 1);
  const anchors = anchorsOf(train, 500, 64);
  const params = { r: 3, s: 0.3, k: 2 };
  const raw = concat(await generate({ ...params, clip: false }, train, anchors, 13), "images");
  const clipped = concat(await generate({ ...params, clip: true }, train, anchors, 13), "images");
  const outside = raw.filter((v) => v < 0 || v > 1).length;
  assert.ok(outside > raw.length / 10, "the test's noise must push values out of range");
  for (let i = 0; i < raw.length; i++) {
    assert.ok(clipped[i] >= 0 && clipped[i] <= 1);
    assert.equal(clipped[i], Math.min(1, Math.max(0, raw[i])), `value ${i}`);
  }
});

// ---------------------------------------------------------------------------------------------
// Bookkeeping

Deno.test("outputs: one batch per anchor batch, same shape, ids 0..count-1, anchors' labels", async () => {
  const train = trainingSet(25, 2, 3, 2);
  const count = 103;
  const anchors = anchorsOf(train, count, 10);
  const before = concat(anchors, "images").slice();
  const out = await generate({}, train, anchors, 1);
  assert.equal(out.length, anchors.length);
  for (let b = 0; b < out.length; b++) {
    assert.deepEqual(out[b].shape, anchors[b].shape);
    assert.equal(out[b].images.length, anchors[b].images.length);
    assert.deepEqual(out[b].labels, anchors[b].labels);
    assert.notEqual(out[b].labels, anchors[b].labels, "labels are copied, not shared");
    assert.ok(out[b].provenance.every((p) => p === Provenance.noised));
    assert.deepEqual([...out[b].generator], new Array(out[b].shape[0]).fill("noise"));
  }
  assert.deepEqual(concat(out, "ids"), Int32Array.from({ length: count }, (_, i) => i));
  assert.deepEqual(concat(out, "labels"), concat(anchors, "labels"));
  // Anchor labels are those of the anchors' training images.
  const position = positionById(train);
  const anchorIds = concat(anchors, "ids");
  assert.deepEqual(
    concat(out, "labels"),
    Int32Array.from(anchorIds, (id) => train.labels[position.get(id)!]),
  );
  // The anchors themselves are not modified.
  assert.deepEqual(bytes(concat(anchors, "images")), bytes(before));
  assert.equal(noise.name, "noise");
  assert.equal(noise.provenance, "noised");
});

Deno.test("default noise moves every image (r = 1, s = 0.05)", async () => {
  const train = trainingSet(10, 4, 4, 1);
  const anchors = anchorsOf(train, 40, 16);
  const out = concat(await generate({}, train, anchors), "images");
  const a = concat(anchors, "images");
  for (let j = 0; j < 40; j++) {
    let sq = 0;
    for (let v = 0; v < 16; v++) sq += (out[j * 16 + v] - a[j * 16 + v]) ** 2;
    assert.ok(sq > 0, `sample ${j} unchanged`);
  }
});

// ---------------------------------------------------------------------------------------------
// Determinism

for (const params of [{ r: 1, s: 0.05, k: 0 }, { r: 0.5, s: 0.1, k: 2, clip: true }]) {
  Deno.test(`same seed gives identical bytes for anchor batches of 1, 7 and 256 (${JSON.stringify(params)})`, async () => {
    const train = trainingSet(60, 4, 4, 1);
    const count = 300;
    const runs: Float32Array[] = [];
    for (const batchSize of [1, 7, 256]) {
      const anchors = anchorsOf(train, count, batchSize, 21);
      const out = await generate(params, train, anchors, 77);
      assert.equal(out.length, Math.ceil(count / batchSize));
      assert.deepEqual(concat(out, "ids"), Int32Array.from({ length: count }, (_, i) => i));
      runs.push(concat(out, "images"));
    }
    assert.deepEqual(bytes(runs[1]), bytes(runs[0]), "batch size 7 differs from 1");
    assert.deepEqual(bytes(runs[2]), bytes(runs[0]), "batch size 256 differs from 1");
    // A fresh operator with the same seed repeats itself.
    const again = await generate(params, train, anchorsOf(train, count, 256, 21), 77);
    assert.deepEqual(bytes(concat(again, "images")), bytes(runs[0]));
    // Another seed gives other bytes, in (almost) every value not clipped to 0 or 1.
    const other = concat(
      await generate(params, train, anchorsOf(train, count, 7, 21), 78),
      "images",
    );
    let same = 0;
    let free = 0;
    for (let i = 0; i < other.length; i++) {
      if (runs[0][i] <= 0 || runs[0][i] >= 1) continue;
      free++;
      if (other[i] === runs[0][i]) same++;
    }
    assert.ok(free > other.length / 2);
    assert.ok(same < free / 100, `${same} of ${free} values unchanged`);
  });
}
