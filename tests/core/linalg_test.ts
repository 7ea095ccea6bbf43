// solveSpd against a hand-computed system and against A x = b for a random Gram matrix.

import assert from "node:assert/strict";
import { solveSpd } from "../../core/linalg.ts";
import { Rng } from "../../core/rng.ts";

Deno.test("solveSpd: [[4, 2], [2, 3]] x = [2, 1] is x = [0.5, 0] (by hand); a ridge shifts the diagonal", () => {
  assert.deepEqual(Array.from(solveSpd([4, 2, 2, 3], [2, 1], 2)), [0.5, 0]);
  // (A + I) x = b: [[5, 2], [2, 4]] x = [2, 1], det 16 -> x = [(8 - 2) / 16, (5 - 4) / 16].
  const x = solveSpd([4, 2, 2, 3], [2, 1], 2, 1);
  assert.ok(Math.abs(x[0] - 3 / 8) < 1e-15 && Math.abs(x[1] - 1 / 16) < 1e-15);
  assert.throws(() => solveSpd([1, 1, 1, 1], [1, 1], 2), /not positive definite/);
});

Deno.test("solveSpd: a random 12 x 12 Gram matrix, residual |A x - b| below 1e-10", () => {
  const rng = new Rng(0, "linalg");
  const n = 12, m = 20;
  const g = Float64Array.from({ length: n * m }, () => rng.normal());
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      for (let k = 0; k < m; k++) a[i * n + j] += g[i * m + k] * g[j * m + k];
    }
  }
  const b = Float64Array.from({ length: n }, () => rng.normal());
  const x = solveSpd(a, b, n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += a[i * n + j] * x[j];
    assert.ok(Math.abs(s - b[i]) < 1e-10, `row ${i}: ${s} vs ${b[i]}`);
  }
});
