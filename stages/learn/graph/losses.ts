// Losses as graph pieces: each emits its value and the gradient with respect to its input, so a
// training graph is forward, loss, then backward from that gradient. Stop-gradient is simply no
// backward edge; targets computed outside the graph (SwAV codes) enter as inputs.

import type { GraphBuilder } from "../../../core/onnx.ts";

/**
 * NT-Xent (SimCLR) over 2n L2-normalised rows z, row i's positive being row (i + n) mod 2n:
 *   l_i = -log( exp(z_i . z_p(i) / tau) / sum_{k != i} exp(z_i . z_k / tau) ),  loss = mean_i l_i.
 * Gradient: with S = z z^T / tau (diagonal masked), P = softmax(S) row-wise, Y the positive
 * indicator, dS = (P - Y) / 2n and dz = (dS + dS^T) z / tau.
 */
export function emitNtXent(
  g: GraphBuilder,
  z: string,
  rows: number,
  tau: number,
  prefix = "ntxent",
): {
  loss: string;
  dz: string;
} {
  const n = rows / 2;
  const mask = new Float32Array(rows * rows);
  const positive = new Float32Array(rows * rows);
  for (let i = 0; i < rows; i++) {
    mask[i * rows + i] = -Infinity;
    positive[i * rows + ((i + n) % rows)] = 1;
  }
  const maskName = g.constant(`${prefix}.mask`, mask, [rows, rows]);
  const positiveName = g.constant(`${prefix}.positive`, positive, [rows, rows]);
  const invTau = g.constant(`${prefix}.inv_tau`, Float32Array.of(1 / tau), []);
  const [zT] = g.node("Transpose", [z]);
  const [sim] = g.node("Add", [...g.node("Mul", [...g.node("MatMul", [z, zT]), invTau]), maskName]);
  const [logProb] = g.node("LogSoftmax", [sim], { attributes: { axis: { int: 1 } } });
  // -sum(Y log P) / 2n; the masked diagonal (log P = -inf) meets Y = 0 only through Where.
  const [zero] = [g.constant(`${prefix}.zero`, Float32Array.of(0), [])];
  const [picked] = g.node("Where", [
    ...g.node("Cast", [positiveName], { attributes: { to: { int: 9 } } }),
    logProb,
    zero,
  ]);
  const [loss] = g.node("Mul", [
    ...g.node("ReduceSum", [picked], { attributes: { keepdims: { int: 0 } } }),
    g.constant(`${prefix}.scale`, Float32Array.of(-1 / rows), []),
  ]);
  const [dSim] = g.node("Mul", [
    ...g.node("Sub", [
      ...g.node("Softmax", [sim], { attributes: { axis: { int: 1 } } }),
      positiveName,
    ]),
    g.constant(`${prefix}.inv_rows`, Float32Array.of(1 / rows), []),
  ]);
  const [dSym] = g.node("Add", [dSim, ...g.node("Transpose", [dSim])]);
  const [dz] = g.node("Mul", [...g.node("MatMul", [dSym, z]), invTau]);
  return { loss, dz };
}

/** Mean squared error over rows x features against the input "target": loss, and its gradient. */
export function emitMse(
  g: GraphBuilder,
  y: string,
  target: string,
  count: number,
  prefix = "mse",
): {
  loss: string;
  dy: string;
} {
  const [diff] = g.node("Sub", [y, target]);
  const [loss] = g.node("Mul", [
    ...g.node("ReduceSumSquare", [diff], { attributes: { keepdims: { int: 0 } } }),
    g.constant(`${prefix}.inv_count`, Float32Array.of(1 / count), []),
  ]);
  const [dy] = g.node("Mul", [
    diff,
    g.constant(`${prefix}.two_over_count`, Float32Array.of(2 / count), []),
  ]);
  return { loss, dy };
}
