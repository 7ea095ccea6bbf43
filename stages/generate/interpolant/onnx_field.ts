// The fast path of the Gaussian-base empirical field: the B x N x d work runs through
// onnxruntime-node, one session per chunk of the training set (the chunk is a constant
// initializer, so onnxruntime pre-packs it for its GEMM). Each chunk graph returns its softmax
// statistics (max logit, sum, weighted values) and its top-k logits; chunks merge in float64 with
// the exact log-add-exp rule, so memory is O(B d + B chunk) whatever N is.
//
// Accuracy near t = 1, where 1 / (2 sigma^2) amplifies float32 rounding: the top-k candidates of
// every chunk get their logits recomputed from exact float64 distances. When every other point's
// logit is provably at least 28 nats (a weight of 1e-12) below the best, even after adding a
// worst-case bound on float32 GEMM error, the denoiser is the exact softmax over the candidates;
// otherwise the weights are spread out, float32 logits are accurate enough, and the merged
// statistics are used.

import { createSession, GraphBuilder, ort } from "../../../core/onnx.ts";
import type { Field, FieldValue, Points } from "./field.ts";
import type { Coefficients } from "./schedule.ts";

export interface OnnxFieldOptions {
  /** Training points per chunk (and per session). */
  readonly chunk?: number;
  /** Candidates per chunk whose logits are recomputed exactly. */
  readonly topK?: number;
  readonly threads?: number;
  /**
   * Query rows per onnxruntime call (default 64). Every call has exactly this many (zero padded),
   * so results do not depend on batching; larger suits large unconditional batches, smaller
   * suits class-conditional groups, which are each padded to a block.
   */
  readonly block?: number;
}

/** Relative weight below which the points outside the candidate set are dropped. */
const DROPPED_MASS = 1e-12;
const FLOAT32_EPS = 2 ** -24;
/** Query rows per onnxruntime call unless options.block says otherwise (see evaluateBlock). */
const DEFAULT_BLOCK = 64;
/**
 * Logit rows are padded to a multiple of 16 floats: vectorised reductions then see every row at
 * the same alignment, so a query's result does not depend on its position in the block.
 */
const ROW_ALIGN = 16;

/**
 * One graph for the whole training set, chunk after chunk: per chunk the logits, their max, sum
 * and weighted values, and the top-k; the chunk statistics merge with the log-add-exp rule.
 * Inputs: xs = (beta / sigma^2) x, and per chunk bias_c = log w_i - beta^2 |y_i|^2 / (2 sigma^2).
 * The row constant -|x|^2 / (2 sigma^2) is left out (it cancels in the softmax).
 */
function fieldModel(y: Float32Array, d: number, chunks: readonly ChunkInfo[]): Uint8Array {
  const g = new GraphBuilder("closed_form_field");
  const xs = g.input("xs", "float", ["B", d]);
  const axes = g.constant("axes", BigInt64Array.from([1n]), [1]);
  const maxes: string[] = [];
  const sums: string[] = [];
  const values: string[] = [];
  const topLogits: string[] = [];
  const topIndex: string[] = [];
  for (const [c, { start, rows, width, k }] of chunks.entries()) {
    const bias = g.input(`bias_${c}`, "float", [width]);
    const keys = new Float32Array(width * d);
    keys.set(y.subarray(start * d, (start + rows) * d));
    const keysName = g.constant(`y_${c}`, keys, [width, d]);
    const [logits] = g.node("Gemm", [xs, keysName, bias], { attributes: { transB: { int: 1 } } });
    const [max] = g.node("ReduceMax", [logits], {
      attributes: { axes: { ints: [1] }, keepdims: { int: 1 } },
    });
    const [weights] = g.node("Exp", g.node("Sub", [logits, max]));
    const [sum] = g.node("ReduceSum", [weights, axes], { attributes: { keepdims: { int: 1 } } });
    const [value] = g.node("MatMul", [weights, keysName]);
    const kTensor = g.constant(`k_${c}`, BigInt64Array.from([BigInt(k)]), [1]);
    const [top, index] = g.node("TopK", [logits, kTensor], { outputs: 2 });
    const offset = g.constant(`offset_${c}`, BigInt64Array.from([BigInt(start)]), [1]);
    maxes.push(max);
    sums.push(sum);
    values.push(value);
    topLogits.push(top);
    topIndex.push(...g.node("Add", [index, offset]));
  }
  g.node("Max", maxes, { outputs: ["max"] });
  const scaledSums: string[] = [];
  const scaledValues: string[] = [];
  for (let c = 0; c < chunks.length; c++) {
    const [w] = g.node("Exp", g.node("Sub", [maxes[c], "max"]));
    scaledSums.push(...g.node("Mul", [sums[c], w]));
    scaledValues.push(...g.node("Mul", [values[c], w]));
  }
  g.node("Sum", scaledSums, { outputs: ["sum"] });
  g.node("Sum", scaledValues, { outputs: ["values"] });
  g.node("Concat", topLogits, { outputs: ["top_logits"], attributes: { axis: { int: 1 } } });
  g.node("Concat", topIndex, { outputs: ["top_index"], attributes: { axis: { int: 1 } } });
  const kTotal = chunks.reduce((s, c) => s + c.k, 0);
  g.output("max", "float", ["B", 1]);
  g.output("sum", "float", ["B", 1]);
  g.output("values", "float", ["B", d]);
  g.output("top_logits", "float", ["B", kTotal]);
  g.output("top_index", "int64", ["B", kTotal]);
  return g.build();
}

interface ChunkInfo {
  readonly start: number;
  readonly rows: number;
  /** rows rounded up to a multiple of ROW_ALIGN; the padding has zero keys and -inf logits. */
  readonly width: number;
  /** Candidates taken from this chunk. */
  readonly k: number;
}

export interface OnnxField extends Field {
  /** Evaluations that used the exact candidate softmax / the merged float32 statistics. */
  readonly counts: { exact: number; merged: number };
  release(): Promise<void>;
}

export async function onnxField(
  points: Points,
  options: OnnxFieldOptions = {},
): Promise<OnnxField> {
  const { y, n, d, logWeights } = points;
  const BLOCK = options.block ?? DEFAULT_BLOCK;
  const chunkSize = Math.min(options.chunk ?? 4096, n);
  const topK = options.topK ?? 4;
  const norms = new Float64Array(n);
  let maxNorm = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += y[i * d + j] * y[i * d + j];
    norms[i] = s;
    maxNorm = Math.max(maxNorm, Math.sqrt(s));
  }
  const chunks: ChunkInfo[] = [];
  for (let start = 0; start < n; start += chunkSize) {
    const rows = Math.min(chunkSize, n - start);
    chunks.push({
      start,
      rows,
      width: Math.ceil(rows / ROW_ALIGN) * ROW_ALIGN,
      k: Math.min(topK, rows),
    });
  }
  const kTotal = chunks.reduce((s, c) => s + c.k, 0);
  const session = await createSession(fieldModel(y, d, chunks), options.threads);
  const counts = { exact: 0, merged: 0 };

  /**
   * One block of exactly BLOCK rows (the first `b` real, the rest zero padding). A GEMM's float32
   * result for a row depends on how many rows the call has, so every call has the same number:
   * a sample's bytes then do not depend on how the stream was batched or grouped by class.
   */
  async function evaluateBlock(c: Coefficients, x: Float64Array, b: number): Promise<FieldValue> {
    const { beta, sigma2 } = c;
    const inv2s = 1 / (2 * sigma2);
    const scale = beta / sigma2;
    const xs = new Float32Array(BLOCK * d);
    const xNorm2 = new Float64Array(b);
    for (let q = 0; q < b; q++) {
      let s = 0;
      for (let j = 0; j < d; j++) {
        const v = x[q * d + j];
        xs[q * d + j] = v * scale;
        s += v * v;
      }
      xNorm2[q] = s;
    }
    const feeds: Record<string, ort.Tensor> = { xs: new ort.Tensor("float32", xs, [BLOCK, d]) };
    let maxBias = 0;
    for (const [ci, { start, rows, width }] of chunks.entries()) {
      const bias = new Float32Array(width).fill(-Infinity);
      for (let i = 0; i < rows; i++) {
        bias[i] = (logWeights ? logWeights[start + i] : 0) - beta * beta * norms[start + i] * inv2s;
        maxBias = Math.max(maxBias, Math.abs(bias[i]));
      }
      feeds[`bias_${ci}`] = new ort.Tensor("float32", bias, [width]);
    }
    const out = await session.run(feeds);
    const sum = out.sum.data as Float32Array;
    const values = out.values.data as Float32Array;
    const topLogits = out.top_logits.data as Float32Array;
    const topIndex = out.top_index.data as BigInt64Array;
    const m = new Float64Array(b * d);
    const nearest2 = new Float64Array(b).fill(Infinity);
    const second2 = new Float64Array(b).fill(Infinity);
    const nearestIndex = new Int32Array(b).fill(-1);
    const exact = new Float64Array(kTotal);
    const index = new Int32Array(kTotal);
    for (let q = 0; q < b; q++) {
      // The float32 logits alone can prove the weights spread: the best exact logit is at most
      // the best float32 one plus the error margin, so if the points below each chunk's k-th
      // candidate weigh more than DROPPED_MASS against it, the merged statistics are the answer
      // and only each chunk's winner needs an exact distance (for nearest2).
      const row = xNorm2[q] * inv2s;
      let best32 = -Infinity;
      let j0 = 0;
      for (const { k } of chunks) {
        best32 = Math.max(best32, topLogits[q * kTotal + j0] - row);
        j0 += k;
      }
      let spread = 0;
      j0 = 0;
      for (const { rows, k } of chunks) {
        if (rows > k) {
          spread += (rows - k) * Math.exp(topLogits[q * kTotal + j0 + k - 1] - row - best32);
        }
        j0 += k;
      }
      if (spread > DROPPED_MASS) {
        counts.merged++;
        j0 = 0;
        for (const { k } of chunks) {
          const i = Number(topIndex[q * kTotal + j0]);
          let dist = 0;
          for (let v = 0; v < d; v++) {
            const e = x[q * d + v] - beta * y[i * d + v];
            dist += e * e;
          }
          if (dist < nearest2[q]) [nearest2[q], nearestIndex[q]] = [dist, i];
          j0 += k;
        }
        // No certificate can come from spread weights: second2 = nearest2 says so to pruned.ts.
        second2[q] = nearest2[q];
        const inv = 1 / sum[q];
        for (let v = 0; v < d; v++) m[q * d + v] = values[q * d + v] * inv;
        continue;
      }
      // Worst-case float32 error of a GEMM logit of length d: d * eps * (|scale x| |y| + |bias|).
      const margin = 2 * d * FLOAT32_EPS * (scale * Math.sqrt(xNorm2[q]) * maxNorm + maxBias) + 1;
      // Exact float64 logits of the candidates that can matter: one whose float32 logit is more
      // than 2 margins + 40 nats below the best float32 logit weighs under e^-40 of the winner
      // whatever the rounding, so it is left out (and bounds second2 by its float32 logit).
      const skipBelow = best32 - 2 * margin - 40;
      let best = -Infinity;
      for (let j = 0; j < kTotal; j++) {
        const i = index[j] = Number(topIndex[q * kTotal + j]);
        const logit32 = topLogits[q * kTotal + j] - row;
        if (logit32 < skipBelow) {
          exact[j] = -Infinity;
          if (!logWeights) second2[q] = Math.min(second2[q], -2 * sigma2 * (logit32 + margin));
          continue;
        }
        let dist = 0;
        for (let v = 0; v < d; v++) {
          const e = x[q * d + v] - beta * y[i * d + v];
          dist += e * e;
        }
        if (dist < nearest2[q]) {
          second2[q] = nearest2[q];
          nearest2[q] = dist;
          nearestIndex[q] = i;
        } else if (dist < second2[q]) second2[q] = dist;
        exact[j] = (logWeights ? logWeights[i] : 0) - dist * inv2s;
        best = Math.max(best, exact[j]);
      }
      let dropped = 0;
      j0 = 0;
      for (const { rows, k } of chunks) {
        // Every point outside a chunk's candidates has a logit at most that chunk's k-th.
        const kth = topLogits[q * kTotal + j0 + k - 1] - xNorm2[q] * inv2s;
        if (rows > k) {
          dropped += (rows - k) * Math.exp(kth + margin - best);
          // With uniform weights a logit is -dist^2 / (2 sigma^2): a floor on the distances of
          // the points outside the candidates, so second2 is a true second-nearest bound.
          if (!logWeights) second2[q] = Math.min(second2[q], -2 * sigma2 * (kth + margin));
        }
        j0 += k;
      }
      const mq = m.subarray(q * d, (q + 1) * d);
      if (dropped > DROPPED_MASS) {
        counts.merged++;
        const inv = 1 / sum[q];
        for (let v = 0; v < d; v++) mq[v] = values[q * d + v] * inv;
        continue;
      }
      counts.exact++;
      let total = 0;
      for (let j = 0; j < kTotal; j++) {
        const w = Math.exp(exact[j] - best);
        if (w === 0) continue;
        total += w;
        const i = index[j];
        for (let v = 0; v < d; v++) mq[v] += w * y[i * d + v];
      }
      for (let v = 0; v < d; v++) mq[v] /= total;
    }
    return { my: m, ma: null, nearest2, second2, nearestIndex };
  }

  // At beta = 0 (t = 0) every point is equally far from x: the weights are the prior's and the
  // denoiser is the weighted mean of the training set, exactly, with no GEMM.
  let mean: Float64Array | null = null;
  function priorMean(): Float64Array {
    if (mean) return mean;
    mean = new Float64Array(d);
    const top = logWeights ? Math.max(...logWeights) : 0;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const w = logWeights ? Math.exp(logWeights[i] - top) : 1;
      total += w;
      for (let j = 0; j < d; j++) mean[j] += w * y[i * d + j];
    }
    for (let j = 0; j < d; j++) mean[j] /= total;
    return mean;
  }

  async function evaluate(c: Coefficients, x: Float64Array, b: number): Promise<FieldValue> {
    if (c.beta === 0) {
      const m = new Float64Array(b * d);
      const nearest2 = new Float64Array(b);
      for (let q = 0; q < b; q++) {
        m.set(priorMean(), q * d);
        for (let j = 0; j < d; j++) nearest2[q] += x[q * d + j] ** 2;
      }
      return {
        my: m,
        ma: null,
        nearest2,
        second2: nearest2.slice(),
        nearestIndex: new Int32Array(b),
      };
    }
    if (b === BLOCK) return evaluateBlock(c, x, b);
    const my = new Float64Array(b * d);
    const nearest2 = new Float64Array(b);
    const second2 = new Float64Array(b);
    const nearestIndex = new Int32Array(b);
    for (let start = 0; start < b; start += BLOCK) {
      const rows = Math.min(BLOCK, b - start);
      const block = new Float64Array(BLOCK * d);
      block.set(x.subarray(start * d, (start + rows) * d));
      const v = await evaluateBlock(c, block, rows);
      my.set(v.my.subarray(0, rows * d), start * d);
      nearest2.set(v.nearest2.subarray(0, rows), start);
      second2.set(v.second2!.subarray(0, rows), start);
      nearestIndex.set(v.nearestIndex!.subarray(0, rows), start);
    }
    return { my, ma: null, nearest2, second2, nearestIndex };
  }

  return { d, bothEnds: false, counts, evaluate, release: () => session.release() };
}
