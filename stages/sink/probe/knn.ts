// The weighted kNN monitor of the SimCLR / MoCo / InstDisc code: features L2-normalised, cosine
// similarity of every test feature to every train feature, the top k train neighbours (k = 200,
// fewer when the train set is smaller) vote for their class with weight exp(s / T), T = 0.1, and
// the class with the largest summed weight is the prediction (ties: the lowest class).
//
// Two kernels compute the same thing. The JavaScript one accumulates in float64 (each dot product
// summed over the feature axis in order, as a plain loop would), register-blocked 4 test x 2 train
// rows; it is the reference-exact one and the fastest for small problems. The onnxruntime one
// runs MatMul + TopK in float32 on every core, test rows in chunks so the similarity matrix stays
// bounded; it wins once the problem reaches tens of GFLOPs (CIFAR: 50,000 x 10,000 x 512).
// "auto" picks by size (AUTO_ONNX_MACS). Measured on 2 cores, warm session: 8000 x 2000 x 128
// takes 1.2 s in JavaScript and 0.4 s in onnxruntime, 50,000 x 10,000 x 512 takes 7 s in
// onnxruntime (JavaScript: about 140 s); both kernels gave identical predictions on every random
// problem tried (float32 error, ~1e-7, is far below the gaps between neighbours' similarities).

import { createSession, GraphBuilder, ort } from "../../../core/onnx.ts";

export interface KnnOptions {
  /** Neighbours per test feature (200); capped at the number of train features. */
  readonly k?: number;
  /** Temperature of the exp(s / T) vote weights (0.1). */
  readonly temperature?: number;
  /** Number of classes; labels must lie in [0, classes). Default: the largest label + 1. */
  readonly classes?: number;
  /** Kernel: "js" (float64, exact), "onnx" (float32 MatMul + TopK), or "auto" by size. */
  readonly backend?: "js" | "onnx" | "auto";
}

export interface ProbeResult {
  /** correct / total, on [0, 1]. */
  readonly accuracy: number;
  readonly correct: number;
  readonly total: number;
}

/**
 * Multiply-adds (train x test x dim) above which "auto" uses onnxruntime. Below it the float64
 * JavaScript kernel takes under about half a second and is exact.
 */
export const AUTO_ONNX_MACS = 1e9;

/** Rows of `x` ([n, dim]) divided by max(|row|, 1e-12), as F.normalize, in float64. */
export function normaliseRows(x: Float32Array, dim: number): Float64Array {
  const n = x.length / dim;
  const out = new Float64Array(x.length);
  for (let i = 0; i < n; i++) {
    const o = i * dim;
    let s = 0;
    for (let f = 0; f < dim; f++) s += x[o + f] * x[o + f];
    const scale = 1 / Math.max(Math.sqrt(s), 1e-12);
    for (let f = 0; f < dim; f++) out[o + f] = x[o + f] * scale;
  }
  return out;
}

/** The k best (similarity, index) pairs seen: a min-heap on (s, -index), worst at the root. */
class TopK {
  readonly sims: Float64Array;
  readonly idx: Int32Array;
  size = 0;
  constructor(readonly k: number) {
    this.sims = new Float64Array(k);
    this.idx = new Int32Array(k);
  }
  reset(): void {
    this.size = 0;
  }
  /** a worse than b: lower similarity, or equal similarity and a higher index. */
  #worse(sa: number, ia: number, sb: number, ib: number): boolean {
    return sa < sb || (sa === sb && ia > ib);
  }
  push(s: number, i: number): void {
    const { sims, idx } = this;
    if (this.size < this.k) {
      let c = this.size++;
      while (c > 0) {
        const p = (c - 1) >> 1;
        if (!this.#worse(s, i, sims[p], idx[p])) break;
        sims[c] = sims[p];
        idx[c] = idx[p];
        c = p;
      }
      sims[c] = s;
      idx[c] = i;
      return;
    }
    if (!this.#worse(sims[0], idx[0], s, i)) return;
    const n = this.size;
    let c = 0;
    for (;;) {
      const l = 2 * c + 1;
      if (l >= n) break;
      const r = l + 1;
      const w = r < n && this.#worse(sims[r], idx[r], sims[l], idx[l]) ? r : l;
      if (!this.#worse(sims[w], idx[w], s, i)) break;
      sims[c] = sims[w];
      idx[c] = idx[w];
      c = w;
    }
    sims[c] = s;
    idx[c] = i;
  }
}

function checkLabels(labels: Int32Array, classes: number, what: string): void {
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (!(l >= 0 && l < classes)) {
      throw new Error(`knn: ${what} label ${l} at ${i} not in [0, ${classes})`);
    }
  }
}

/** Largest label + 1 over both label sets (at least 1). */
export function classCount(...labelSets: Int32Array[]): number {
  let max = 0;
  for (const labels of labelSets) for (const l of labels) max = Math.max(max, l);
  return max + 1;
}

/** Weighted vote of one test feature's neighbours; returns the winning class (lowest on ties). */
function vote(
  sims: ArrayLike<number>,
  idx: ArrayLike<number>,
  count: number,
  trainLabels: Int32Array,
  invT: number,
  scores: Float64Array,
): number {
  scores.fill(0);
  for (let j = 0; j < count; j++) scores[trainLabels[idx[j]]] += Math.exp(sims[j] * invT);
  let best = 0;
  for (let c = 1; c < scores.length; c++) if (scores[c] > scores[best]) best = c;
  return best;
}

/**
 * Similarities of four test rows (offsets a0..a3 into te) to every train row: sims[r * n + j].
 * Its own small function, called once per block, so V8 optimises it as a whole (one long-running
 * function is left to on-stack replacement, which deoptimised to 3x slower code in testing).
 */
function similarities4(
  tr: Float64Array,
  te: Float64Array,
  a0: number,
  a1: number,
  a2: number,
  a3: number,
  n: number,
  dim: number,
  sims: Float64Array,
): void {
  let j = 0;
  for (; j + 1 < n; j += 2) {
    const b0 = j * dim;
    const b1 = b0 + dim;
    let s00 = 0, s01 = 0, s10 = 0, s11 = 0, s20 = 0, s21 = 0, s30 = 0, s31 = 0;
    for (let f = 0; f < dim; f++) {
      const u = tr[b0 + f];
      const v = tr[b1 + f];
      const q0 = te[a0 + f];
      const q1 = te[a1 + f];
      const q2 = te[a2 + f];
      const q3 = te[a3 + f];
      s00 += q0 * u;
      s01 += q0 * v;
      s10 += q1 * u;
      s11 += q1 * v;
      s20 += q2 * u;
      s21 += q2 * v;
      s30 += q3 * u;
      s31 += q3 * v;
    }
    sims[j] = s00;
    sims[j + 1] = s01;
    sims[n + j] = s10;
    sims[n + j + 1] = s11;
    sims[2 * n + j] = s20;
    sims[2 * n + j + 1] = s21;
    sims[3 * n + j] = s30;
    sims[3 * n + j + 1] = s31;
  }
  if (j < n) {
    const b0 = j * dim;
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (let f = 0; f < dim; f++) {
      const u = tr[b0 + f];
      s0 += te[a0 + f] * u;
      s1 += te[a1 + f] * u;
      s2 += te[a2 + f] * u;
      s3 += te[a3 + f] * u;
    }
    sims[j] = s0;
    sims[n + j] = s1;
    sims[2 * n + j] = s2;
    sims[3 * n + j] = s3;
  }
}

/** The top k of sims[offset .. offset + n) into the heap. */
function selectTop(heap: TopK, sims: Float64Array, offset: number, n: number): void {
  heap.reset();
  for (let t = 0; t < n; t++) heap.push(sims[offset + t], t);
}

/** Predicted class of every test feature, float64 JavaScript kernel. */
export function knnPredictJs(
  train: Float32Array,
  trainLabels: Int32Array,
  test: Float32Array,
  dim: number,
  k: number,
  temperature: number,
  classes: number,
): Int32Array {
  const n = train.length / dim;
  const m = test.length / dim;
  const tr = normaliseRows(train, dim);
  const te = normaliseRows(test, dim);
  const predictions = new Int32Array(m);
  const heap = new TopK(Math.min(k, n));
  const scores = new Float64Array(classes);
  const invT = 1 / temperature;
  const sims = new Float64Array(4 * n);
  for (let i0 = 0; i0 < m; i0 += 4) {
    // Short final blocks repeat their last row; the extra results are not used.
    const row = (r: number) => Math.min(i0 + r, m - 1) * dim;
    similarities4(tr, te, row(0), row(1), row(2), row(3), n, dim, sims);
    for (let r = 0; r < Math.min(4, m - i0); r++) {
      selectTop(heap, sims, r * n, n);
      predictions[i0 + r] = vote(heap.sims, heap.idx, heap.size, trainLabels, invT, scores);
    }
  }
  return predictions;
}

/** Test rows per onnxruntime call: bounds the [rows, n] similarity matrix to about 64 MB. */
function onnxChunk(n: number): number {
  return Math.max(16, Math.min(4096, Math.floor((16 << 20) / Math.max(n, 1))));
}

/** Predicted class of every test feature, float32 onnxruntime MatMul + TopK kernel. */
export async function knnPredictOnnx(
  train: Float32Array,
  trainLabels: Int32Array,
  test: Float32Array,
  dim: number,
  k: number,
  temperature: number,
  classes: number,
): Promise<Int32Array> {
  const n = train.length / dim;
  const m = test.length / dim;
  const kk = Math.min(k, n);
  const predictions = new Int32Array(m);
  if (m === 0) return predictions;
  // Normalised in float64, then stored as float32; train transposed to [dim, n] for the MatMul.
  const tr = normaliseRows(train, dim);
  const trT = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) for (let f = 0; f < dim; f++) trT[f * n + i] = tr[i * dim + f];
  const g = new GraphBuilder("knn");
  const q = g.input("q", "float", ["M", dim]);
  const t = g.constant("trainT", trT, [dim, n]);
  const kTensor = g.constant("k", BigInt64Array.of(BigInt(kk)), [1]);
  const [s] = g.node("MatMul", [q, t]);
  g.node("TopK", [s, kTensor], {
    outputs: ["values", "indices"],
    attributes: { axis: { int: 1 }, largest: { int: 1 }, sorted: { int: 1 } },
  });
  g.output("values", "float", ["M", kk]);
  g.output("indices", "int64", ["M", kk]);
  const session = await createSession(g.build());
  const scores = new Float64Array(classes);
  const invT = 1 / temperature;
  const idx = new Int32Array(kk);
  const chunk = onnxChunk(n);
  try {
    for (let start = 0; start < m; start += chunk) {
      const rows = Math.min(chunk, m - start);
      const block = new Float32Array(rows * dim);
      const normed = normaliseRows(test.subarray(start * dim, (start + rows) * dim), dim);
      block.set(normed);
      const out = await session.run({ q: new ort.Tensor("float32", block, [rows, dim]) });
      const values = out.values.data as Float32Array;
      const indices = out.indices.data as BigInt64Array;
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < kk; j++) idx[j] = Number(indices[r * kk + j]);
        const sims = values.subarray(r * kk, (r + 1) * kk);
        predictions[start + r] = vote(sims, idx, kk, trainLabels, invT, scores);
      }
    }
  } finally {
    await session.release();
  }
  return predictions;
}

/**
 * Weighted kNN accuracy of `test` ([m, dim] features, labels) against `train` ([n, dim]).
 * Features are taken as given (frozen encoder outputs) and never written.
 */
export async function knnAccuracy(
  train: Float32Array,
  trainLabels: Int32Array,
  test: Float32Array,
  testLabels: Int32Array,
  dim: number,
  options: KnnOptions = {},
): Promise<ProbeResult & { predictions: Int32Array }> {
  const n = trainLabels.length;
  const m = testLabels.length;
  if (train.length !== n * dim || test.length !== m * dim) {
    throw new Error(
      `knn: ${train.length} train and ${test.length} test values for ${n} and ${m} rows of ${dim}`,
    );
  }
  if (n === 0) throw new Error("knn: no train features");
  const k = options.k ?? 200;
  const temperature = options.temperature ?? 0.1;
  if (!(k >= 1) || !(temperature > 0)) throw new Error(`knn: k ${k}, temperature ${temperature}`);
  const classes = options.classes ?? classCount(trainLabels, testLabels);
  checkLabels(trainLabels, classes, "train");
  checkLabels(testLabels, classes, "test");
  const backend = options.backend ?? "auto";
  const onnx = backend === "onnx" || (backend === "auto" && n * m * dim > AUTO_ONNX_MACS);
  const predictions = onnx
    ? await knnPredictOnnx(train, trainLabels, test, dim, k, temperature, classes)
    : knnPredictJs(train, trainLabels, test, dim, k, temperature, classes);
  let correct = 0;
  for (let i = 0; i < m; i++) if (predictions[i] === testLabels[i]) correct++;
  return { accuracy: m === 0 ? 0 : correct / m, correct, total: m, predictions };
}
