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

/** Row r's partner: the other view of the same image, (r + B) mod 2B, as an int64 index. */
function otherViewIndex(g: GraphBuilder, prefix: string, rows: number): string {
  if (!Number.isInteger(rows) || rows < 2 || rows % 2 !== 0) {
    throw new Error(`${prefix}: rows must be 2B views, got ${rows}`);
  }
  const n = rows / 2;
  const index = BigInt64Array.from({ length: rows }, (_, r) => BigInt((r + n) % rows));
  return g.constant(`${prefix}.other_view`, index, [rows]);
}

function positiveSizes(prefix: string, sizes: Record<string, number>): void {
  for (const [name, v] of Object.entries(sizes)) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${prefix}: ${name} must be >= 1, got ${v}`);
  }
}

/** The [1] int64 axes input of opset-13+ ReduceSum, reducing the feature axis of [rows, n]. */
function featureAxis(g: GraphBuilder, prefix: string): string {
  return g.constant(`${prefix}.axis1`, BigInt64Array.of(1n), [1]);
}

/**
 * Symmetric MoCo v2 over 2B rows (view 1 of image i at row i, view 2 at row B + i). q [rows, dim]
 * are the query encoder's L2-normalised outputs, keys [rows, dim] the key encoder's normalised
 * outputs for the same rows, queue [queueSize, dim] the negatives; keys and queue are inputs, so
 * they get no gradient (stop-gradient = no backward edge). Row r's logits are
 *   [q_r . k_p(r), q_r . queue_1, ..., q_r . queue_Q] / tau,  p(r) = (r + B) mod 2B,
 * the target is index 0, and loss = mean over the 2B rows of the cross-entropy, which is the
 * average of the two view orders' MoCo losses (each a mean over B).
 * Gradient: with P = softmax(logits), dq_r = ((P_r0 - 1) k_p(r) + sum_j P_rj queue_j) / (tau 2B).
 */
export function emitMoco(
  g: GraphBuilder,
  q: string,
  keys: string,
  queue: string,
  rows: number,
  queueSize: number,
  dim: number,
  tau: number,
  prefix = "moco",
): {
  loss: string;
  dq: string;
} {
  positiveSizes(prefix, { queueSize, dim });
  const other = otherViewIndex(g, prefix, rows);
  const axis1 = featureAxis(g, prefix);
  const [kp] = g.node("Gather", [keys, other], { attributes: { axis: { int: 0 } } });
  const [pos] = g.node("ReduceSum", [...g.node("Mul", [q, kp]), axis1], {
    attributes: { keepdims: { int: 1 } },
  });
  const [neg] = g.node("MatMul", [q, ...g.node("Transpose", [queue])]);
  const [logits] = g.node("Mul", [
    ...g.node("Concat", [pos, neg], { attributes: { axis: { int: 1 } } }),
    g.constant(`${prefix}.inv_tau`, Float32Array.of(1 / tau), []),
  ]);
  const split = g.constant(`${prefix}.split`, BigInt64Array.of(1n, BigInt(queueSize)), [2]);
  const [logProb] = g.node("LogSoftmax", [logits], { attributes: { axis: { int: 1 } } });
  const [posLogProb] = g.node("Split", [logProb, split], {
    outputs: 2,
    attributes: { axis: { int: 1 } },
  });
  const [loss] = g.node("Mul", [
    ...g.node("ReduceSum", [posLogProb], { attributes: { keepdims: { int: 0 } } }),
    g.constant(`${prefix}.scale`, Float32Array.of(-1 / rows), []),
  ]);
  const [pPos, pNeg] = g.node("Split", [
    ...g.node("Softmax", [logits], { attributes: { axis: { int: 1 } } }),
    split,
  ], { outputs: 2, attributes: { axis: { int: 1 } } });
  const [dPos] = g.node("Sub", [pPos, g.constant(`${prefix}.one`, Float32Array.of(1), [])]);
  const [dq] = g.node("Mul", [
    ...g.node("Add", [...g.node("Mul", [dPos, kp]), ...g.node("MatMul", [pNeg, queue])]),
    g.constant(`${prefix}.grad_scale`, Float32Array.of(1 / (tau * rows)), []),
  ]);
  return { loss, dq };
}

/**
 * SimSiam over 2B rows: p [rows, dim] predictor outputs, z [rows, dim] projector outputs (the
 * targets). L = 1/2 D(p1, sg(z2)) + 1/2 D(p2, sg(z1)), D(a, b) = -mean_i cos(a_i, b_i), which is
 * -mean over the 2B rows of cos(p_r, z_p(r)), p(r) = (r + B) mod 2B. Stop-gradient is no backward
 * edge: only dp is returned, and nothing flows into z here (z does change the loss; the targets
 * are simply treated as constants). Norms are floored at 1e-12 as in the l2norm block.
 * Gradient: with ph = p / |p|, zh = z_p / |z_p|, c = ph . zh: dp_r = -(zh_r - c_r ph_r) / (|p_r| 2B).
 */
export function emitSimSiam(
  g: GraphBuilder,
  p: string,
  z: string,
  rows: number,
  dim: number,
  prefix = "simsiam",
): {
  loss: string;
  dp: string;
} {
  positiveSizes(prefix, { dim });
  const other = otherViewIndex(g, prefix, rows);
  const axis1 = featureAxis(g, prefix);
  const floor = g.constant(`${prefix}.floor`, Float32Array.of(1e-12), []);
  const norm = (v: string) =>
    g.node("Max", [
      ...g.node("ReduceL2", [v], { attributes: { axes: { ints: [1] }, keepdims: { int: 1 } } }),
      floor,
    ])[0];
  const [zp] = g.node("Gather", [z, other], { attributes: { axis: { int: 0 } } });
  const pNorm = norm(p);
  const [ph] = g.node("Div", [p, pNorm]);
  const [zh] = g.node("Div", [zp, norm(zp)]);
  const [cos] = g.node("ReduceSum", [...g.node("Mul", [ph, zh]), axis1], {
    attributes: { keepdims: { int: 1 } },
  });
  const scale = g.constant(`${prefix}.scale`, Float32Array.of(-1 / rows), []);
  const [loss] = g.node("Mul", [
    ...g.node("ReduceSum", [cos], { attributes: { keepdims: { int: 0 } } }),
    scale,
  ]);
  const [dp] = g.node("Mul", [
    ...g.node("Div", [...g.node("Sub", [zh, ...g.node("Mul", [cos, ph])]), pNorm]),
    scale,
  ]);
  return { loss, dp };
}

/**
 * SwAV swapped prediction over 2B rows: scores [rows, K] = z C^T (z and the prototypes C
 * L2-normalised), codes [rows, K] the Sinkhorn-Knopp assignments (computed outside the graph, an
 * input: no gradient). Each row predicts the other view's code:
 *   loss = -(1/2B) sum_r sum_k codes_p(r),k log softmax(scores_r / T)_k
 *        = -(1/2) mean_i [ q2_i . log softmax(s1_i / T) + q1_i . log softmax(s2_i / T) ].
 * Gradient: dscores_r = (softmax(scores_r / T) sum_k codes_p(r),k - codes_p(r)) / (T 2B); the code
 * mass is 1 for Sinkhorn codes, kept so the gradient is exact for any codes.
 */
export function emitSwav(
  g: GraphBuilder,
  scores: string,
  codes: string,
  rows: number,
  prototypes: number,
  temperature: number,
  prefix = "swav",
): {
  loss: string;
  dscores: string;
} {
  positiveSizes(prefix, { prototypes });
  const other = otherViewIndex(g, prefix, rows);
  const [target] = g.node("Gather", [codes, other], { attributes: { axis: { int: 0 } } });
  const [scaled] = g.node("Mul", [
    scores,
    g.constant(`${prefix}.inv_temperature`, Float32Array.of(1 / temperature), []),
  ]);
  const [logProb] = g.node("LogSoftmax", [scaled], { attributes: { axis: { int: 1 } } });
  const [loss] = g.node("Mul", [
    ...g.node("ReduceSum", [...g.node("Mul", [target, logProb])], {
      attributes: { keepdims: { int: 0 } },
    }),
    g.constant(`${prefix}.scale`, Float32Array.of(-1 / rows), []),
  ]);
  const [mass] = g.node("ReduceSum", [target, featureAxis(g, prefix)], {
    attributes: { keepdims: { int: 1 } },
  });
  const [dscores] = g.node("Mul", [
    ...g.node("Sub", [
      ...g.node("Mul", [
        ...g.node("Softmax", [scaled], { attributes: { axis: { int: 1 } } }),
        mass,
      ]),
      target,
    ]),
    g.constant(`${prefix}.grad_scale`, Float32Array.of(1 / (temperature * rows)), []),
  ]);
  return { loss, dscores };
}

/**
 * Softmax cross-entropy over rows of logits [rows, classes] against "target" [rows, classes]
 * (one-hot labels, or any distribution per row), the supervised classifier's loss:
 *   loss = -(1/rows) sum_r sum_k target_rk log softmax(logits_r)_k.
 * Gradient: dlogits_r = (softmax(logits_r) sum_k target_rk - target_r) / rows; the target's mass
 * is 1 for one-hot rows, kept so the gradient is exact for any target.
 */
export function emitSoftmaxCrossEntropy(
  g: GraphBuilder,
  logits: string,
  target: string,
  rows: number,
  prefix = "xent",
): {
  loss: string;
  dlogits: string;
} {
  positiveSizes(prefix, { rows });
  const [logProb] = g.node("LogSoftmax", [logits], { attributes: { axis: { int: 1 } } });
  const scale = g.constant(`${prefix}.scale`, Float32Array.of(-1 / rows), []);
  const [loss] = g.node("Mul", [
    ...g.node("ReduceSum", [...g.node("Mul", [target, logProb])], {
      attributes: { keepdims: { int: 0 } },
    }),
    scale,
  ]);
  const [mass] = g.node("ReduceSum", [target, featureAxis(g, prefix)], {
    attributes: { keepdims: { int: 1 } },
  });
  const [dlogits] = g.node("Mul", [
    ...g.node("Sub", [
      ...g.node("Mul", [
        ...g.node("Softmax", [logits], { attributes: { axis: { int: 1 } } }),
        mass,
      ]),
      target,
    ]),
    g.constant(`${prefix}.inv_rows`, Float32Array.of(1 / rows), []),
  ]);
  return { loss, dlogits };
}
