// Nonnegative least squares: exact on a point of the cone, zero weights for columns pointing
// away, and the distance to the cone's face otherwise (compared with the closed form).

import assert from "node:assert/strict";
import { nnls } from "../../core/nnls.ts";

Deno.test("nnls: a convex combination of the rows has residual 0 and its own weights", () => {
  const rows = Float64Array.of(1, 0, 0, 0, 1, 0, 0, 0, 1);
  const { weights, residual } = nnls(rows, 3, [0.2, 0.5, 0.3]);
  assert.ok(residual < 1e-9, `${residual}`);
  [0.2, 0.5, 0.3].forEach((w, i) => assert.ok(Math.abs(weights[i] - w) < 1e-9));
});

Deno.test("nnls: a negative direction gets weight 0; the residual is the distance to the cone", () => {
  // Rows e1 and e2 in 3-D; x = (1, -2, 2): the best nonnegative fit is (1, 0, 0), residual sqrt(8).
  const rows = Float64Array.of(1, 0, 0, 0, 1, 0);
  const { weights, residual } = nnls(rows, 2, [1, -2, 2]);
  assert.ok(Math.abs(weights[0] - 1) < 1e-9 && weights[1] === 0);
  assert.ok(Math.abs(residual - Math.sqrt(8)) < 1e-9, `${residual}`);
});

Deno.test("nnls: correlated rows still converge to the least-squares fit inside the cone", () => {
  // y1 = (1, 1), y2 = (1, 0.9): x = 0.4 y1 + 0.6 y2 exactly.
  const rows = Float64Array.of(1, 1, 1, 0.9);
  const x = [0.4 + 0.6, 0.4 + 0.54];
  const { weights, residual } = nnls(rows, 2, x, 5000);
  assert.ok(residual < 1e-6, `${residual}`);
  assert.ok(Math.abs(weights[0] - 0.4) < 1e-4 && Math.abs(weights[1] - 0.6) < 1e-4, `${weights}`);
});
