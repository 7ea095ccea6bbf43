// Student-t quantiles against published table values, and the interval and paired comparison
// against hand computations.

import assert from "node:assert/strict";
import { mannWhitneyZ, paired, studentCdf, studentQuantile, summarize } from "../../core/stats.ts";

const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

Deno.test("t quantiles equal the table (0.975: df 1, 2, 4, 10, 30; large df -> 1.96)", () => {
  const table: [number, number][] = [[1, 12.7062], [2, 4.3027], [4, 2.7764], [10, 2.2281], [
    30,
    2.0423,
  ]];
  for (const [df, t] of table) close(studentQuantile(0.975, df), t, 5e-4, `df ${df}`);
  close(studentQuantile(0.975, 1e6), 1.95996, 1e-4, "df 1e6");
  close(studentQuantile(0.025, 3), -3.1824, 5e-4, "lower tail");
  close(studentCdf(0, 5), 0.5, 1e-12, "median");
});

Deno.test("summary: mean, sample sd and the 95 % t-interval by hand; one value has no interval", () => {
  const s = summarize([1, 2, 3, 6]);
  // mean 3, sd sqrt(((4 + 1 + 0 + 9) / 3)) = sqrt(14/3), half = t(0.975, 3) sd / 2.
  const half = 3.182446 * Math.sqrt(14 / 3) / 2;
  close(s.mean, 3, 1e-12, "mean");
  close(s.sd, Math.sqrt(14 / 3), 1e-12, "sd");
  close(s.lo, 3 - half, 1e-5, "lo");
  close(s.hi, 3 + half, 1e-5, "hi");
  const one = summarize([5]);
  assert.ok(one.mean === 5 && one.sd === 0 && Number.isNaN(one.lo) && Number.isNaN(one.hi));
});

Deno.test("paired: per-pair differences, their interval and the sign counts", () => {
  const p = paired([80, 82, 81, 79], [79, 80, 81, 80]);
  assert.deepEqual(p.differences, [1, 2, 0, -1]);
  assert.deepEqual([p.above, p.below, p.ties], [2, 1, 1]);
  close(p.mean, 0.5, 1e-12, "mean difference");
  assert.throws(() => paired([1], [1, 2]));
});

Deno.test("mannWhitneyZ: U by hand on small samples, ties at 1/2, sign", () => {
  // a = [1, 3], b = [2, 4, 5]: pairs a > b: (3 > 2) only, U = 1; n m / 2 = 3, var = 6 * 6 / 12 = 3.
  assert.ok(Math.abs(mannWhitneyZ([1, 3], [2, 4, 5]) - (1 - 3) / Math.sqrt(3)) < 1e-15);
  // A tie counts 1/2: a = [2], b = [2, 1]: U = 1.5, n m / 2 = 1, var = 2 * 4 / 12.
  assert.ok(Math.abs(mannWhitneyZ([2], [2, 1]) - 0.5 / Math.sqrt(8 / 12)) < 1e-15);
  assert.ok(mannWhitneyZ([5, 6, 7], [1, 2, 3]) > 0);
});
