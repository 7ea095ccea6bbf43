// The MoCo v2, SimSiam and SwAV loss pieces, run by onnxruntime, against naive float64 references
// written here with plain loops: the loss to 1e-5 relative, the gradient to a central finite
// difference of the reference to 1e-4 relative. Also: both view orders give the same loss,
// SimSiam's stop-gradient is no gradient for z (not a zero derivative), and 20 plain
// gradient-descent steps with the graph's gradient lower each loss.

import assert from "node:assert/strict";
import { createSession, GraphBuilder, ort } from "../../../../core/onnx.ts";
import { Rng } from "../../../../core/rng.ts";
import {
  emitMoco,
  emitNtXent,
  emitSimSiam,
  emitSwav,
} from "../../../../stages/learn/graph/losses.ts";
import { sinkhorn } from "../../../../stages/learn/sinkhorn.ts";
import { maxRelativeError } from "../../../_shared.ts";

type Shape = readonly number[];

function random(length: number, ...key: (number | string)[]): Float32Array {
  const rng = new Rng(7, ...key);
  return Float32Array.from({ length }, () => rng.normal());
}

function normalizeRows(x: ArrayLike<number>, rows: number, dim: number): Float32Array {
  const out = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let d = 0; d < dim; d++) s += x[r * dim + d] ** 2;
    const n = Math.sqrt(s);
    for (let d = 0; d < dim; d++) out[r * dim + d] = x[r * dim + d] / n;
  }
  return out;
}

/** a + scale * b, as float32. */
function axpy(a: Float32Array, b: Float32Array, scale: number): Float32Array {
  return a.map((v, i) => v + scale * b[i]);
}

/** Rows [B, 2B) then [0, B): the same batch with the two views swapped. */
function swapViews(x: Float32Array, rows: number, dim: number): Float32Array {
  const half = (rows / 2) * dim;
  const out = new Float32Array(x.length);
  out.set(x.subarray(half), 0);
  out.set(x.subarray(0, half), half);
  return out;
}

function assertLoss(got: number, want: number, what: string): void {
  const rel = Math.abs(got - want) / Math.abs(want);
  assert.ok(rel < 1e-5, `${what}: loss ${got} vs reference ${want} (relative ${rel})`);
}

/** Central finite difference (h = 1e-5) of a float64 function at x, every coordinate. */
function finiteDifference(f: (x: Float64Array) => number, x0: ArrayLike<number>): Float64Array {
  const h = 1e-5;
  const x = Float64Array.from(x0);
  const grad = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    x[i] = v + h;
    const up = f(x);
    x[i] = v - h;
    const down = f(x);
    x[i] = v;
    grad[i] = (up - down) / (2 * h);
  }
  return grad;
}

interface Compiled {
  run(feeds: Record<string, Float32Array>): Promise<Record<string, Float32Array>>;
  release(): Promise<void>;
}

/** A graph of the given float inputs, the loss piece, and its named outputs. */
async function compile(
  inputs: Record<string, Shape>,
  emit: (g: GraphBuilder) => Record<string, string>,
  outputShapes: Record<string, Shape>,
): Promise<Compiled & { names: string[] }> {
  const g = new GraphBuilder("loss_test");
  for (const [name, shape] of Object.entries(inputs)) g.input(name, "float", shape);
  const emitted = emit(g);
  for (const [name, value] of Object.entries(emitted)) {
    g.node("Identity", [value], { outputs: [`out.${name}`] });
    g.output(`out.${name}`, "float", outputShapes[name]);
  }
  const session = await createSession(g.build(), 1);
  return {
    names: Object.keys(emitted),
    async run(feeds) {
      const tensors: Record<string, ort.Tensor> = {};
      for (const [name, data] of Object.entries(feeds)) {
        tensors[name] = new ort.Tensor("float32", data, [...inputs[name]]);
      }
      const out = await session.run(tensors);
      return Object.fromEntries(
        Object.keys(emitted).map((name) => [name, out[`out.${name}`].data as Float32Array]),
      );
    },
    release: () => session.release(),
  };
}

function dot(a: ArrayLike<number>, ai: number, b: ArrayLike<number>, bi: number, n: number) {
  let s = 0;
  for (let d = 0; d < n; d++) s += a[ai * n + d] * b[bi * n + d];
  return s;
}

/** log(sum_j exp(v_j)), max-shifted. */
function logSumExp(v: number[]): number {
  const m = Math.max(...v);
  let s = 0;
  for (const x of v) s += Math.exp(x - m);
  return m + Math.log(s);
}

// ---------------------------------------------------------------------------------------------
// MoCo v2

/**
 * Naive symmetric MoCo v2: the MoCo loss of view 1 queries against view 2 keys (mean over the B
 * images of the cross-entropy with the positive at index 0), the same with the views swapped,
 * averaged.
 */
function mocoReference(
  q: ArrayLike<number>,
  keys: ArrayLike<number>,
  queue: ArrayLike<number>,
  b: number,
  queueSize: number,
  dim: number,
  tau: number,
): number {
  const order = (qOffset: number, kOffset: number) => {
    let total = 0;
    for (let i = 0; i < b; i++) {
      const logits = [dot(q, qOffset + i, keys, kOffset + i, dim) / tau];
      for (let j = 0; j < queueSize; j++) logits.push(dot(q, qOffset + i, queue, j, dim) / tau);
      total += logSumExp(logits) - logits[0];
    }
    return total / b;
  };
  return (order(0, b) + order(b, 0)) / 2;
}

interface MocoCase {
  readonly b: number;
  readonly queueSize: number;
  readonly dim: number;
  readonly tau: number;
}

function mocoData(c: MocoCase, seed: number) {
  const rows = 2 * c.b;
  const q = normalizeRows(random(rows * c.dim, "moco.q", seed), rows, c.dim);
  // Keys near the same view's query, as an EMA key encoder gives.
  const keys = normalizeRows(
    axpy(q, random(rows * c.dim, "moco.k", seed), 0.3),
    rows,
    c.dim,
  );
  const queue = normalizeRows(
    random(c.queueSize * c.dim, "moco.queue", seed),
    c.queueSize,
    c.dim,
  );
  return { q, keys, queue };
}

function mocoGraph(c: MocoCase) {
  const rows = 2 * c.b;
  return compile(
    { q: [rows, c.dim], keys: [rows, c.dim], queue: [c.queueSize, c.dim] },
    (g) => emitMoco(g, "q", "keys", "queue", rows, c.queueSize, c.dim, c.tau),
    { loss: [], dq: [rows, c.dim] },
  );
}

const MOCO_CASES: MocoCase[] = [
  { b: 3, queueSize: 10, dim: 6, tau: 0.2 },
  { b: 1, queueSize: 1, dim: 3, tau: 0.1 },
  { b: 4, queueSize: 32, dim: 8, tau: 0.07 },
];

Deno.test("moco: loss equals the naive reference, dq its finite difference", async () => {
  for (const c of MOCO_CASES) {
    const graph = await mocoGraph(c);
    assert.deepEqual(graph.names, ["loss", "dq"]);
    const { q, keys, queue } = mocoData(c, 1);
    const out = await graph.run({ q, keys, queue });
    await graph.release();
    const f = (x: ArrayLike<number>) =>
      mocoReference(x, keys, queue, c.b, c.queueSize, c.dim, c.tau);
    assertLoss(out.loss[0], f(q), `moco ${JSON.stringify(c)}`);
    const err = maxRelativeError(out.dq, finiteDifference(f, q));
    assert.ok(err < 1e-4, `moco ${JSON.stringify(c)}: dq relative error ${err}`);
  }
});

Deno.test("moco: swapping the two views' rows gives the same loss", async () => {
  const c = MOCO_CASES[0];
  const rows = 2 * c.b;
  const graph = await mocoGraph(c);
  const { q, keys, queue } = mocoData(c, 2);
  const a = await graph.run({ q, keys, queue });
  const b = await graph.run({
    q: swapViews(q, rows, c.dim),
    keys: swapViews(keys, rows, c.dim),
    queue,
  });
  await graph.release();
  assert.ok(Math.abs(a.loss[0] - b.loss[0]) < 1e-6 * Math.abs(a.loss[0]));
  assert.ok(maxRelativeError(b.dq, swapViews(a.dq, rows, c.dim)) < 1e-6);
});

Deno.test("moco: the loss falls over 20 gradient-descent steps", async () => {
  const c = MOCO_CASES[0];
  const rows = 2 * c.b;
  const graph = await mocoGraph(c);
  let { q } = mocoData(c, 3);
  // Random keys, unrelated to q: the queries must move towards them.
  const keys = normalizeRows(random(rows * c.dim, "moco.descent.k"), rows, c.dim);
  const { queue } = mocoData(c, 3);
  const losses: number[] = [];
  for (let step = 0; step <= 20; step++) {
    const out = await graph.run({ q, keys, queue });
    losses.push(out.loss[0]);
    q = normalizeRows(axpy(q, out.dq, -0.5 * rows), rows, c.dim);
  }
  await graph.release();
  // Never up (beyond float32 noise once it has settled at its minimum), and well down overall.
  for (let i = 1; i < losses.length; i++) assert.ok(losses[i] <= losses[i - 1] + 1e-6, `${losses}`);
  assert.ok(losses[20] < 0.1 * losses[0], `${losses}`);
});

Deno.test("nt-xent: swapping the two views' rows gives the same loss, as for MoCo", async () => {
  const b = 3;
  const dim = 6;
  const rows = 2 * b;
  const graph = await compile(
    { z: [rows, dim] },
    (g) => emitNtXent(g, "z", rows, 0.5),
    { loss: [], dz: [rows, dim] },
  );
  const z = normalizeRows(random(rows * dim, "ntxent.z"), rows, dim);
  const a = await graph.run({ z });
  const s = await graph.run({ z: swapViews(z, rows, dim) });
  await graph.release();
  assert.ok(Math.abs(a.loss[0] - s.loss[0]) < 1e-6 * Math.abs(a.loss[0]));
  assert.ok(maxRelativeError(s.dz, swapViews(a.dz, rows, dim)) < 1e-6);
});

// ---------------------------------------------------------------------------------------------
// SimSiam

/** Naive SimSiam: 1/2 D(p1, z2) + 1/2 D(p2, z1), D(a, b) = -mean_i cos(a_i, b_i). */
function simSiamReference(
  p: ArrayLike<number>,
  z: ArrayLike<number>,
  b: number,
  dim: number,
): number {
  const cos = (i: number, j: number) =>
    dot(p, i, z, j, dim) / Math.sqrt(dot(p, i, p, i, dim) * dot(z, j, z, j, dim));
  const negativeCosine = (pOffset: number, zOffset: number) => {
    let total = 0;
    for (let i = 0; i < b; i++) total += cos(pOffset + i, zOffset + i);
    return -total / b;
  };
  return 0.5 * negativeCosine(0, b) + 0.5 * negativeCosine(b, 0);
}

const SIMSIAM = { b: 3, dim: 7 };

function simSiamData(seed: number) {
  const rows = 2 * SIMSIAM.b;
  const z = random(rows * SIMSIAM.dim, "simsiam.z", seed);
  // Predictions near the other view's projection (a partly trained predictor), unnormalised.
  const p = axpy(swapViews(z, rows, SIMSIAM.dim), random(rows * SIMSIAM.dim, "simsiam.p", seed), 1);
  return { p, z };
}

function simSiamGraph() {
  const rows = 2 * SIMSIAM.b;
  return compile(
    { p: [rows, SIMSIAM.dim], z: [rows, SIMSIAM.dim] },
    (g) => emitSimSiam(g, "p", "z", rows, SIMSIAM.dim),
    { loss: [], dp: [rows, SIMSIAM.dim] },
  );
}

Deno.test("simsiam: loss equals the naive reference, dp its finite difference", async () => {
  const graph = await simSiamGraph();
  for (const seed of [1, 2, 3]) {
    const { p, z } = simSiamData(seed);
    const out = await graph.run({ p, z });
    // The gradient with respect to p with the target side z held fixed.
    const f = (x: ArrayLike<number>) => simSiamReference(x, z, SIMSIAM.b, SIMSIAM.dim);
    assertLoss(out.loss[0], f(p), `simsiam seed ${seed}`);
    const err = maxRelativeError(out.dp, finiteDifference(f, p));
    assert.ok(err < 1e-4, `simsiam seed ${seed}: dp relative error ${err}`);
  }
  await graph.release();
});

Deno.test("simsiam: stop-gradient is no backward edge to z, not a zero derivative", async () => {
  const graph = await simSiamGraph();
  // The piece hands back the loss and dp only: nothing for z.
  assert.deepEqual(graph.names, ["loss", "dp"]);
  const { p, z } = simSiamData(4);
  const base = await graph.run({ p, z });
  // The loss does depend on z: its true derivative is far from zero, and moving z moves the loss.
  const dz = finiteDifference((x) => simSiamReference(p, x, SIMSIAM.b, SIMSIAM.dim), z);
  assert.ok(Math.max(...dz.map(Math.abs)) > 1e-2, `dz ${dz}`);
  const moved = await graph.run({ p, z: axpy(z, Float32Array.from(dz), -0.5) });
  assert.ok(moved.loss[0] < base.loss[0] - 1e-3, `${moved.loss[0]} vs ${base.loss[0]}`);
  // And dp does not depend on whether z is treated as moving: it is the partial derivative.
  const dp = finiteDifference((x) => simSiamReference(x, z, SIMSIAM.b, SIMSIAM.dim), p);
  assert.ok(maxRelativeError(base.dp, dp) < 1e-4);
  await graph.release();
});

Deno.test("simsiam: swapping the two views' rows gives the same loss", async () => {
  const rows = 2 * SIMSIAM.b;
  const graph = await simSiamGraph();
  const { p, z } = simSiamData(5);
  const a = await graph.run({ p, z });
  const b = await graph.run({
    p: swapViews(p, rows, SIMSIAM.dim),
    z: swapViews(z, rows, SIMSIAM.dim),
  });
  await graph.release();
  assert.ok(Math.abs(a.loss[0] - b.loss[0]) < 1e-6 * Math.abs(a.loss[0]));
  assert.ok(maxRelativeError(b.dp, swapViews(a.dp, rows, SIMSIAM.dim)) < 1e-6);
});

Deno.test("simsiam: the loss falls over 20 gradient-descent steps", async () => {
  const rows = 2 * SIMSIAM.b;
  const graph = await simSiamGraph();
  // Unrelated random predictions and targets: the loss starts near 0 and should head to -1.
  let p = random(rows * SIMSIAM.dim, "simsiam.descent.p");
  const z = random(rows * SIMSIAM.dim, "simsiam.descent.z");
  const losses: number[] = [];
  for (let step = 0; step <= 20; step++) {
    const out = await graph.run({ p, z });
    losses.push(out.loss[0]);
    // The cosine is scale-free, so p needs no re-normalisation.
    p = axpy(p, out.dp, -1 * rows);
  }
  await graph.release();
  for (let i = 1; i < losses.length; i++) assert.ok(losses[i] < losses[i - 1], `${losses}`);
  assert.ok(losses[20] < -0.8, `${losses}`);
});

// ---------------------------------------------------------------------------------------------
// SwAV

/**
 * Naive SwAV swapped prediction:
 *   -(1/2) mean_i [ q2_i . log softmax(s1_i / T) + q1_i . log softmax(s2_i / T) ].
 */
function swavReference(
  scores: ArrayLike<number>,
  codes: ArrayLike<number>,
  b: number,
  k: number,
  temperature: number,
): number {
  const logSoftmax = (row: number) => {
    const v: number[] = [];
    for (let j = 0; j < k; j++) v.push(scores[row * k + j] / temperature);
    const lse = logSumExp(v);
    return v.map((x) => x - lse);
  };
  const cross = (codeRow: number, scoreRow: number) => {
    const l = logSoftmax(scoreRow);
    let s = 0;
    for (let j = 0; j < k; j++) s += codes[codeRow * k + j] * l[j];
    return s;
  };
  let total = 0;
  for (let i = 0; i < b; i++) total += cross(b + i, i) + cross(i, b + i);
  return -0.5 * (total / b);
}

const SWAV = { b: 4, k: 5, dim: 6, temperature: 0.1 };

/** Normalised embeddings z, normalised prototypes C, scores z C^T and Sinkhorn codes. */
function swavData(seed: number) {
  const rows = 2 * SWAV.b;
  const base = random(SWAV.b * SWAV.dim, "swav.image", seed);
  const views = new Float32Array(rows * SWAV.dim);
  views.set(base, 0);
  views.set(base, SWAV.b * SWAV.dim);
  const z = normalizeRows(
    axpy(views, random(rows * SWAV.dim, "swav.view", seed), 0.5),
    rows,
    SWAV.dim,
  );
  const c = normalizeRows(random(SWAV.k * SWAV.dim, "swav.prototypes", seed), SWAV.k, SWAV.dim);
  const scores = swavScores(z, c);
  return { z, c, scores, codes: sinkhorn(scores, rows, SWAV.k) };
}

function swavScores(z: Float32Array, c: Float32Array): Float32Array {
  const rows = z.length / SWAV.dim;
  const s = new Float32Array(rows * SWAV.k);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < SWAV.k; j++) s[r * SWAV.k + j] = dot(z, r, c, j, SWAV.dim);
  }
  return s;
}

function swavGraph() {
  const rows = 2 * SWAV.b;
  return compile(
    { scores: [rows, SWAV.k], codes: [rows, SWAV.k] },
    (g) => emitSwav(g, "scores", "codes", rows, SWAV.k, SWAV.temperature),
    { loss: [], dscores: [rows, SWAV.k] },
  );
}

Deno.test("swav: loss equals the naive reference, dscores its finite difference", async () => {
  const graph = await swavGraph();
  assert.deepEqual(graph.names, ["loss", "dscores"]);
  const rows = 2 * SWAV.b;
  for (const seed of [1, 2, 3]) {
    const { scores, codes } = swavData(seed);
    // Sinkhorn codes, and arbitrary non-negative codes whose rows do not sum to 1.
    const loose = random(rows * SWAV.k, "swav.loose", seed).map(Math.abs);
    for (const [name, q] of [["sinkhorn", codes], ["loose", loose]] as const) {
      const out = await graph.run({ scores, codes: q });
      const f = (x: ArrayLike<number>) => swavReference(x, q, SWAV.b, SWAV.k, SWAV.temperature);
      assertLoss(out.loss[0], f(scores), `swav seed ${seed} ${name}`);
      const err = maxRelativeError(out.dscores, finiteDifference(f, scores));
      assert.ok(err < 1e-4, `swav seed ${seed} ${name}: dscores relative error ${err}`);
    }
  }
  await graph.release();
});

Deno.test("swav: swapping the two views' rows gives the same loss", async () => {
  const rows = 2 * SWAV.b;
  const graph = await swavGraph();
  const { scores, codes } = swavData(4);
  const a = await graph.run({ scores, codes });
  const b = await graph.run({
    scores: swapViews(scores, rows, SWAV.k),
    codes: swapViews(codes, rows, SWAV.k),
  });
  await graph.release();
  assert.ok(Math.abs(a.loss[0] - b.loss[0]) < 1e-6 * Math.abs(a.loss[0]));
  assert.ok(maxRelativeError(b.dscores, swapViews(a.dscores, rows, SWAV.k)) < 1e-6);
});

Deno.test("swav: the loss falls over 20 gradient-descent steps", async () => {
  const rows = 2 * SWAV.b;
  const graph = await swavGraph();
  let { z } = swavData(5);
  const { c, codes } = swavData(5);
  const losses: number[] = [];
  for (let step = 0; step <= 20; step++) {
    const out = await graph.run({ scores: swavScores(z, c), codes });
    losses.push(out.loss[0]);
    // Through scores = z C^T: dz = dscores C; then z back onto the sphere.
    const dz = new Float32Array(rows * SWAV.dim);
    for (let r = 0; r < rows; r++) {
      for (let d = 0; d < SWAV.dim; d++) {
        let s = 0;
        for (let j = 0; j < SWAV.k; j++) s += out.dscores[r * SWAV.k + j] * c[j * SWAV.dim + d];
        dz[r * SWAV.dim + d] = s;
      }
    }
    z = normalizeRows(axpy(z, dz, -0.01 * rows), rows, SWAV.dim);
  }
  await graph.release();
  for (let i = 1; i < losses.length; i++) assert.ok(losses[i] < losses[i - 1], `${losses}`);
  assert.ok(losses[20] < 0.8 * losses[0], `${losses}`);
});
