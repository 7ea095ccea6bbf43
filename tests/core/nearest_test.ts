// Exact nearest neighbours: kNearest against a naive sort-based reference on random data, the
// skipSelf rule, -1 padding when k exceeds the keys, and exact zeros on training points.

import assert from "node:assert/strict";
import { kNearest, squaredDistance } from "../../core/nearest.ts";
import { Rng } from "../../core/rng.ts";

function randomPoints(rng: Rng, n: number, d: number): Float32Array {
  const out = new Float32Array(n * d);
  for (let i = 0; i < out.length; i++) out[i] = rng.uniform();
  return out;
}

/** Every distance by a plain loop in float64, sorted by (distance, index), first k kept. */
function naive(
  queries: Float32Array,
  keys: Float32Array,
  d: number,
  k: number,
  skipSelf = false,
): { index: number[][]; distance: number[][] } {
  const nq = queries.length / d;
  const nk = keys.length / d;
  const index: number[][] = [];
  const distance: number[][] = [];
  for (let q = 0; q < nq; q++) {
    const all: [number, number][] = [];
    for (let i = 0; i < nk; i++) {
      if (skipSelf && i === q) continue;
      let s = 0;
      for (let v = 0; v < d; v++) s += (queries[q * d + v] - keys[i * d + v]) ** 2;
      all.push([Math.sqrt(s), i]);
    }
    all.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const top = all.slice(0, k);
    index.push(top.map(([, i]) => i));
    distance.push(top.map(([dist]) => dist));
  }
  return { index, distance };
}

function assertMatchesNaive(
  queries: Float32Array,
  keys: Float32Array,
  d: number,
  k: number,
  skipSelf = false,
): void {
  const got = kNearest(queries, keys, d, k, skipSelf);
  const want = naive(queries, keys, d, k, skipSelf);
  const nq = queries.length / d;
  assert.equal(got.index.length, nq * k);
  assert.equal(got.distance.length, nq * k);
  for (let q = 0; q < nq; q++) {
    for (let j = 0; j < k; j++) {
      const what = `query ${q}, rank ${j} (d=${d}, k=${k}, skipSelf=${skipSelf})`;
      if (j < want.index[q].length) {
        assert.equal(got.index[q * k + j], want.index[q][j], what);
        assert.ok(Math.abs(got.distance[q * k + j] - want.distance[q][j]) <= 1e-9, what);
      } else {
        assert.equal(got.index[q * k + j], -1, what);
        assert.equal(got.distance[q * k + j], Infinity, what);
      }
    }
  }
}

Deno.test("squaredDistance matches a plain loop, at offsets and for every remainder mod 4", () => {
  const rng = new Rng(1, "nearest-test", "squared");
  for (const d of [1, 2, 3, 4, 5, 7, 8, 13, 784]) {
    const a = randomPoints(rng, 3, d);
    const b = randomPoints(rng, 3, d);
    for (const [ao, bo] of [[0, 0], [d, 2 * d], [2 * d, 0]]) {
      let want = 0;
      for (let v = 0; v < d; v++) want += (a[ao + v] - b[bo + v]) ** 2;
      assert.ok(Math.abs(squaredDistance(a, ao, b, bo, d) - want) <= 1e-9 * Math.max(1, want));
    }
    assert.equal(squaredDistance(a, d, a, d, d), 0);
  }
});

Deno.test("kNearest equals a naive sort-based reference on random data", () => {
  const rng = new Rng(7, "nearest-test", "random");
  for (
    const [nq, nk, d, k] of [
      [20, 50, 3, 1],
      [20, 50, 3, 2],
      [30, 100, 16, 5],
      [10, 64, 784, 3],
      [25, 40, 1, 4],
      [5, 7, 10, 7],
    ]
  ) {
    const queries = randomPoints(rng, nq, d);
    const keys = randomPoints(rng, nk, d);
    assertMatchesNaive(queries, keys, d, k);
  }
});

Deno.test("kNearest with skipSelf equals the naive reference and never returns the query", () => {
  const rng = new Rng(11, "nearest-test", "self");
  for (const [n, d, k] of [[40, 4, 1], [40, 4, 3], [60, 25, 8], [12, 784, 2]]) {
    const points = randomPoints(rng, n, d);
    assertMatchesNaive(points, points, d, k, true);
    const { index } = kNearest(points, points, d, k, true);
    for (let q = 0; q < n; q++) {
      for (let j = 0; j < k; j++) assert.notEqual(index[q * k + j], q, `query ${q}`);
    }
  }
});

Deno.test("skipSelf skips the query's own row even when another key is an exact copy", () => {
  // Rows 0 and 2 are identical: each is the other's nearest, at distance 0.
  const points = Float32Array.of(0, 0, 5, 5, 0, 0, 1, 1);
  const { index, distance } = kNearest(points, points, 2, 2, true);
  assert.deepEqual(Array.from(index), [2, 3, 3, 0, 0, 3, 0, 2]);
  assert.deepEqual(Array.from(distance.subarray(0, 2)), [0, Math.SQRT2]);
  assert.equal(distance[4], 0);
});

Deno.test("k larger than the keys pads with -1 and Infinity", () => {
  const keys = Float32Array.of(0, 3, 1);
  const queries = Float32Array.of(0.9, 10);
  const { index, distance } = kNearest(queries, keys, 1, 5);
  assert.deepEqual(Array.from(index), [2, 0, 1, -1, -1, 1, 2, 0, -1, -1]);
  const want = [0.1, 0.9, 2.1, Infinity, Infinity, 7, 9, 10, Infinity, Infinity];
  for (let i = 0; i < want.length; i++) {
    if (want[i] === Infinity) assert.equal(distance[i], Infinity);
    else assert.ok(Math.abs(distance[i] - want[i]) < 1e-6, `${i}: ${distance[i]}`);
  }
  // With skipSelf, n keys give n - 1 neighbours at most.
  const self = kNearest(keys, keys, 1, 3, true);
  assert.deepEqual(Array.from(self.index), [2, 1, -1, 2, 0, -1, 0, 1, -1]);
});

Deno.test("no keys at all: every slot is padding", () => {
  const { index, distance } = kNearest(Float32Array.of(1, 2, 3, 4), new Float32Array(0), 2, 2);
  assert.deepEqual(Array.from(index), [-1, -1, -1, -1]);
  assert.deepEqual(Array.from(distance), [Infinity, Infinity, Infinity, Infinity]);
});

Deno.test("a query that is a key has distance exactly 0, even far from the origin", () => {
  // Values around 1000: |q|^2 + |k|^2 - 2 q.k would cancel; direct differences give exact 0.
  const rng = new Rng(3, "nearest-test", "exact");
  const d = 50;
  const keys = randomPoints(rng, 20, d).map((v) => 1000 + v);
  const queries = keys.slice(7 * d, 8 * d);
  const { index, distance } = kNearest(queries, keys, d, 2);
  assert.equal(index[0], 7);
  assert.equal(distance[0], 0);
  assert.ok(distance[1] > 0);
});

Deno.test("ties keep the lower key index first", () => {
  // Keys at -1, +1, -1, +1 around the query 0: all at distance 1.
  const keys = Float32Array.of(-1, 1, -1, 1);
  const { index } = kNearest(Float32Array.of(0), keys, 1, 3);
  assert.deepEqual(Array.from(index), [0, 1, 2]);
});
