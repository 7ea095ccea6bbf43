// The weighted kNN monitor: both kernels equal a naive float64 reference in every prediction,
// separated clusters are classified perfectly, and the features are only read.

import assert from "node:assert/strict";
import { Rng } from "../../../../core/rng.ts";
import { knnAccuracy } from "../../../../stages/sink/probe/knn.ts";

function normal(length: number, key: string): Float32Array {
  const rng = new Rng(7, key);
  return Float32Array.from({ length }, () => rng.normal());
}

function labels(length: number, classes: number, key: string): Int32Array {
  const rng = new Rng(7, key);
  return Int32Array.from({ length }, () => rng.int(classes));
}

/** Plain loops in float64: normalise, sort every similarity, vote with the top k. */
function naiveKnn(
  train: Float32Array,
  trainLabels: Int32Array,
  test: Float32Array,
  dim: number,
  k: number,
  t: number,
  classes: number,
): Int32Array {
  const norm = (x: Float32Array) => {
    const rows: number[][] = [];
    for (let i = 0; i < x.length / dim; i++) {
      const row = Array.from(x.subarray(i * dim, (i + 1) * dim));
      const len = Math.max(Math.sqrt(row.reduce((s, v) => s + v * v, 0)), 1e-12);
      rows.push(row.map((v) => v / len));
    }
    return rows;
  };
  const tr = norm(train);
  const te = norm(test);
  return Int32Array.from(te, (q) => {
    const sims = tr.map((row, j) => ({ s: row.reduce((s, v, f) => s + v * q[f], 0), j }));
    sims.sort((a, b) => b.s - a.s || a.j - b.j);
    const scores = new Array<number>(classes).fill(0);
    for (const { s, j } of sims.slice(0, k)) scores[trainLabels[j]] += Math.exp(s / t);
    let best = 0;
    for (let c = 1; c < classes; c++) if (scores[c] > scores[best]) best = c;
    return best;
  });
}

for (const backend of ["js", "onnx"] as const) {
  Deno.test(`kNN (${backend}) equals a naive float64 reference in every prediction`, async () => {
    for (
      const [n, m, dim, k, classes] of [[1500, 300, 32, 200, 10], [50, 40, 8, 200, 3], [
        301,
        7,
        5,
        1,
        4,
      ]]
    ) {
      const train = normal(n * dim, `train${n}`);
      const test = normal(m * dim, `test${n}`);
      const trainLabels = labels(n, classes, `tl${n}`);
      const testLabels = labels(m, classes, `sl${n}`);
      const before = [train.slice(), test.slice()];
      const want = naiveKnn(train, trainLabels, test, dim, k, 0.1, classes);
      const got = await knnAccuracy(train, trainLabels, test, testLabels, dim, {
        k,
        classes,
        backend,
      });
      assert.deepEqual(got.predictions, want, `n ${n} m ${m} dim ${dim} k ${k}`);
      const correct = want.filter((p, i) => p === testLabels[i]).length;
      assert.equal(got.correct, correct);
      assert.equal(got.total, m);
      assert.equal(got.accuracy, correct / m);
      assert.deepEqual([train, test], before, "features are only read");
    }
  });

  Deno.test(`kNN (${backend}): well-separated Gaussian clusters give 100 %`, async () => {
    const dim = 16;
    const classes = 5;
    const rng = new Rng(3, "clusters");
    const centres = Array.from(
      { length: classes },
      () => Array.from({ length: dim }, () => 5 * rng.normal()),
    );
    const draw = (count: number) => {
      const y = Int32Array.from({ length: count }, (_, i) => i % classes);
      const x = Float32Array.from(
        { length: count * dim },
        (_, i) => centres[y[Math.floor(i / dim)]][i % dim] + 0.3 * rng.normal(),
      );
      return { x, y };
    };
    const train = draw(1000);
    const test = draw(400);
    const got = await knnAccuracy(train.x, train.y, test.x, test.y, dim, { backend });
    assert.deepEqual([got.accuracy, got.correct, got.total], [1, 400, 400]);
  });
}

Deno.test("kNN: ties go to the lowest class; labels out of range are refused", async () => {
  // Two train points at the same similarity with equal weights, classes 2 and 1: class 1 wins.
  const train = Float32Array.of(1, 0, 1, 0);
  const got = await knnAccuracy(
    train,
    Int32Array.of(2, 1),
    Float32Array.of(1, 0),
    Int32Array.of(1),
    2,
  );
  assert.deepEqual([...got.predictions], [1]);
  await assert.rejects(
    () =>
      knnAccuracy(train, Int32Array.of(2, 3), Float32Array.of(1, 0), Int32Array.of(1), 2, {
        classes: 3,
      }),
    /train label 3/,
  );
});

Deno.test("kNN at 8000 train x 2000 test x 128 dims takes a few seconds at most", async () => {
  const dim = 128;
  const train = normal(8000 * dim, "big-train");
  const test = normal(2000 * dim, "big-test");
  const trainLabels = labels(8000, 10, "big-tl");
  const testLabels = labels(2000, 10, "big-sl");
  const times: Record<string, number> = {};
  for (const backend of ["js", "onnx", "auto"] as const) {
    const t0 = performance.now();
    const r = await knnAccuracy(train, trainLabels, test, testLabels, dim, { backend });
    times[backend] = Math.round(performance.now() - t0);
    assert.ok(r.accuracy > 0.05 && r.accuracy < 0.15, `random labels: ${r.accuracy}`);
  }
  console.log(`kNN 8000 x 2000 x 128 (ms): ${JSON.stringify(times)}`);
  assert.ok(times.auto < 5000, `auto backend took ${times.auto} ms`);
});
