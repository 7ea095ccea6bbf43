// The seeded Rng: determinism per key, independence across keys, and the moments of each
// distribution checked against 5-sigma tolerances (a correct generator fails about once in
// 1.7 million runs per check; the seeds are fixed, so a pass is a pass forever).

import assert from "node:assert/strict";
import { hashKey, hashName, mix32, Rng } from "../../core/rng.ts";

const N = 100_000;

function draws(rng: Rng, n: number, f: (r: Rng) => number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = f(rng);
  return out;
}

function meanVar(xs: Float64Array): { mean: number; variance: number } {
  let s = 0;
  for (const x of xs) s += x;
  const mean = s / xs.length;
  let ss = 0;
  for (const x of xs) ss += (x - mean) ** 2;
  return { mean, variance: ss / (xs.length - 1) };
}

function within(actual: number, expected: number, sigma: number, what: string): void {
  assert.ok(
    Math.abs(actual - expected) <= 5 * sigma,
    `${what}: ${actual} is more than 5 sigma (${5 * sigma}) from ${expected}`,
  );
}

function firstU32(rng: Rng, n = 16): number[] {
  return Array.from({ length: n }, () => rng.u32());
}

// ---------------------------------------------------------------------------------------------
// Determinism

Deno.test("same key gives the same sequence for every kind of draw", () => {
  const keys: (number | string)[][] = [[0], [42], [42, "noise", 7], [1, "split", -1], ["x"], []];
  for (const key of keys) {
    const a = new Rng(...key);
    const b = new Rng(...key);
    assert.deepEqual(firstU32(a, 100), firstU32(b, 100), `u32 for key ${key}`);
    for (let i = 0; i < 100; i++) assert.equal(a.uniform(), b.uniform());
    for (let i = 0; i < 101; i++) assert.equal(a.normal(), b.normal()); // odd count: spare kept
    for (let i = 0; i < 100; i++) assert.equal(a.exponential(), b.exponential());
    for (let i = 0; i < 100; i++) assert.equal(a.int(1000), b.int(1000));
    assert.deepEqual(a.permutation(500), b.permutation(500));
  }
});

Deno.test("a stream name and its FNV-1a hash are the same key part", () => {
  assert.equal(hashKey(3, "noise", 9), hashKey(3, hashName("noise"), 9));
  assert.deepEqual(firstU32(new Rng(3, "noise", 9)), firstU32(new Rng(3, hashName("noise"), 9)));
});

Deno.test("hashName is FNV-1a 32-bit (reference values)", () => {
  assert.equal(hashName(""), 0x811c9dc5);
  assert.equal(hashName("a"), 0xe40c292c);
  assert.equal(hashName("foobar"), 0xbf9cf968);
});

Deno.test("mix32 and hashKey return unsigned 32-bit integers", () => {
  for (const x of [0, 1, -1, 0x7fffffff, 0x80000000, 0xffffffff, 123456789]) {
    const m = mix32(x);
    assert.ok(Number.isInteger(m) && m >= 0 && m < 2 ** 32, `mix32(${x}) = ${m}`);
  }
  for (const key of [[0], [1, "a"], [2 ** 40, -5, "zz"]]) {
    const h = hashKey(...key);
    assert.ok(Number.isInteger(h) && h >= 0 && h < 2 ** 32);
  }
});

// ---------------------------------------------------------------------------------------------
// Different keys, different streams

Deno.test("different seed, stream or id gives a different sequence", () => {
  const base = firstU32(new Rng(1, "noise", 5));
  const variants: [string, (number | string)[]][] = [
    ["seed", [2, "noise", 5]],
    ["stream", [1, "split", 5]],
    ["id", [1, "noise", 6]],
    ["id above 2^32", [1, "noise", 5 + 2 ** 32]],
    ["order", [5, "noise", 1]],
    ["extra part", [1, "noise", 5, 0]],
    ["missing part", [1, "noise"]],
  ];
  for (const [what, key] of variants) {
    const other = firstU32(new Rng(...key));
    assert.notDeepEqual(other, base, `changing the ${what} must change the sequence`);
    // Not just different: essentially unrelated (no shared draws at the same positions).
    const same = other.filter((v, i) => v === base[i]).length;
    assert.equal(same, 0, `${what}: ${same} of 16 draws coincide`);
  }
});

Deno.test("nearby ids give unrelated first draws (no collisions across 20,000 keys)", () => {
  const seen = new Set<number>();
  for (let id = 0; id < 10_000; id++) {
    seen.add(new Rng(7, "noise", id).u32());
    seen.add(new Rng(8, "noise", id).u32());
  }
  // 20,000 draws from 2^32 values: expected collisions ~0.05.
  assert.ok(seen.size >= 19_998, `${20_000 - seen.size} collisions`);
  // And the first uniform over consecutive ids is itself uniform-looking.
  const firsts = new Float64Array(10_000);
  for (let id = 0; id < firsts.length; id++) firsts[id] = new Rng(0, "x", id).uniform();
  const { mean } = meanVar(firsts);
  within(mean, 0.5, Math.sqrt(1 / 12 / firsts.length), "mean of first draws over ids");
});

// ---------------------------------------------------------------------------------------------
// Distributions

Deno.test("u32 is a 32-bit unsigned integer with every bit fair", () => {
  const rng = new Rng(11);
  const ones = new Array(32).fill(0);
  for (let i = 0; i < N; i++) {
    const v = rng.u32();
    assert.ok(Number.isInteger(v) && v >= 0 && v <= 0xffffffff);
    for (let b = 0; b < 32; b++) ones[b] += (v >>> b) & 1;
  }
  const sigma = Math.sqrt(N * 0.25);
  ones.forEach((count, b) => within(count, N / 2, sigma, `bit ${b} set count`));
});

Deno.test("uniform is on [0, 1) with mean 1/2 and variance 1/12", () => {
  for (const seed of [0, 1, 12345]) {
    const xs = draws(new Rng(seed, "uniform"), N, (r) => r.uniform());
    for (const x of xs) assert.ok(x >= 0 && x < 1, `uniform drew ${x}`);
    const { mean, variance } = meanVar(xs);
    within(mean, 0.5, Math.sqrt(1 / 12 / N), `seed ${seed} mean`);
    // Var(s^2) ~ (mu4 - sigma^4) / N with mu4 = 1/80 for U(0, 1).
    within(variance, 1 / 12, Math.sqrt((1 / 80 - 1 / 144) / N), `seed ${seed} variance`);
    // Ten equal bins, chi-square with 9 degrees of freedom: mean 9, sd sqrt(18).
    const bins = new Array(10).fill(0);
    for (const x of xs) bins[Math.floor(x * 10)]++;
    const chi2 = bins.reduce((s, c) => s + (c - N / 10) ** 2 / (N / 10), 0);
    within(chi2, 9, Math.sqrt(18), `seed ${seed} chi-square over 10 bins`);
  }
});

Deno.test("uniform uses more than 32 bits (53-bit resolution)", () => {
  const rng = new Rng(99);
  let fine = 0;
  for (let i = 0; i < 1000; i++) {
    const x = rng.uniform();
    // A 32-bit uniform would be a multiple of 2^-32; a 53-bit one almost never is.
    if ((x * 2 ** 32) % 1 !== 0) fine++;
  }
  assert.ok(fine > 990, `${fine} of 1000 draws below 2^-32 resolution`);
});

Deno.test("int(n) is on 0..n-1 and each value is equally likely", () => {
  const rng = new Rng(5, "int");
  const n = 7;
  const counts = new Array(n).fill(0);
  for (let i = 0; i < N; i++) {
    const k = rng.int(n);
    assert.ok(Number.isInteger(k) && k >= 0 && k < n, `int(7) drew ${k}`);
    counts[k]++;
  }
  const sigma = Math.sqrt(N * (1 / n) * (1 - 1 / n));
  counts.forEach((c, k) => within(c, N / n, sigma, `count of ${k}`));
  const one = new Rng(1);
  for (let i = 0; i < 100; i++) assert.equal(one.int(1), 0);
});

Deno.test("normal has mean 0 and variance 1", () => {
  for (const seed of [0, 3, 777]) {
    const xs = draws(new Rng(seed, "normal"), N, (r) => r.normal());
    for (const x of xs) assert.ok(Number.isFinite(x));
    const { mean, variance } = meanVar(xs);
    within(mean, 0, Math.sqrt(1 / N), `seed ${seed} mean`);
    // Var(s^2) ~ (mu4 - sigma^4) / N = 2 / N for a standard normal.
    within(variance, 1, Math.sqrt(2 / N), `seed ${seed} variance`);
    // Symmetric, and about 68.27% within one sigma.
    const inside = xs.filter((x) => Math.abs(x) < 1).length / N;
    within(inside, 0.6826894921, Math.sqrt(0.6827 * 0.3173 / N), `seed ${seed} P(|z| < 1)`);
    let third = 0;
    for (const x of xs) third += x ** 3;
    within(third / N, 0, Math.sqrt(15 / N), `seed ${seed} third moment`);
  }
});

Deno.test("exponential has mean 1 and variance 1", () => {
  const xs = draws(new Rng(4, "exp"), N, (r) => r.exponential());
  for (const x of xs) assert.ok(x >= 0 && Number.isFinite(x));
  const { mean, variance } = meanVar(xs);
  within(mean, 1, Math.sqrt(1 / N), "mean");
  // mu4 = 9 for Exp(1): Var(s^2) ~ (9 - 1) / N.
  within(variance, 1, Math.sqrt(8 / N), "variance");
});

// ---------------------------------------------------------------------------------------------
// Permutations

function assertPermutation(p: Int32Array, n: number): void {
  assert.equal(p.length, n);
  const seen = new Uint8Array(n);
  for (const v of p) {
    assert.ok(Number.isInteger(v) && v >= 0 && v < n, `value ${v} outside 0..${n - 1}`);
    assert.equal(seen[v], 0, `value ${v} repeated`);
    seen[v] = 1;
  }
}

Deno.test("permutation is a permutation of 0..n-1", () => {
  const rng = new Rng(2024, "perm");
  for (const n of [0, 1, 2, 3, 10, 1000, 10_007]) assertPermutation(rng.permutation(n), n);
  // A large one actually moves things around.
  const p = new Rng(1).permutation(10_000);
  const fixed = p.filter((v, i) => v === i).length;
  assert.ok(fixed < 10, `${fixed} fixed points (expected about 1)`);
  assert.notDeepEqual(new Rng(1).permutation(100), new Rng(2).permutation(100));
});

Deno.test("permutation is uniform over all 6 orders of 3 items", () => {
  const rng = new Rng(31, "perm3");
  const trials = 60_000;
  const counts = new Map<string, number>();
  for (let i = 0; i < trials; i++) {
    const key = rng.permutation(3).join("");
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  assert.deepEqual([...counts.keys()].sort(), ["012", "021", "102", "120", "201", "210"]);
  const sigma = Math.sqrt(trials * (1 / 6) * (5 / 6));
  for (const [key, c] of counts) within(c, trials / 6, sigma, `order ${key}`);
});

Deno.test("each position of a permutation holds each value equally often", () => {
  const rng = new Rng(8, "perm-pos");
  const n = 5;
  const trials = 20_000;
  const counts = Array.from({ length: n }, () => new Array(n).fill(0));
  for (let t = 0; t < trials; t++) {
    const p = rng.permutation(n);
    for (let i = 0; i < n; i++) counts[i][p[i]]++;
  }
  const sigma = Math.sqrt(trials * (1 / n) * (1 - 1 / n));
  for (let i = 0; i < n; i++) {
    for (let v = 0; v < n; v++) within(counts[i][v], trials / n, sigma, `p[${i}] = ${v}`);
  }
});
