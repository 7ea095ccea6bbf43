// The closed-form sampler against the PyTorch peer (../shared/peers/closed_form_torch.py), same
// maths, same data, same machine, one run: linear interpolant, Fashion-MNIST scaled to [-1, 1],
// Euler over [0, 1 - 1e-3] in K steps, B samples, 2 threads. Two configurations:
//   exact:  N = 10,000, B = 256, K = 50 (the full B N d work every step)
//   pruned: N = 60,000, B = 128, K = 20 (certified one-hot queries skip the O(N d) work), with
//           the largest difference from the exact path from the same noise.

import { createSession, GraphBuilder, ort } from "../core/onnx.ts";
import { Rng } from "../core/rng.ts";
import { onnxField } from "../stages/generate/interpolant/onnx_field.ts";
import { prunedField } from "../stages/generate/interpolant/pruned.ts";
import type { Field } from "../stages/generate/interpolant/field.ts";
import { integrate } from "../stages/generate/interpolant/samplers.ts";
import { interpolant } from "../stages/generate/interpolant/schedule.ts";
import { loadIdx } from "../stages/load/idx.ts";
import { FASHION_MNIST_DIR } from "../stages/load/resolve.ts";
import {
  formatSpread,
  gemmCeiling,
  healthNote,
  median,
  PEERS,
  reportComparison,
  runPeer,
  spread,
  writeSection,
} from "./report.ts";
import type { Spread } from "./report.ts";

const D = 784;
const REPEATS = 3;

interface Case {
  readonly name: string;
  readonly n: number;
  readonly b: number;
  readonly k: number;
}

async function sampleOnce(
  field: Field,
  x0: Float64Array,
  b: number,
  k: number,
): Promise<Float64Array> {
  const x = x0.slice();
  const sampler = {
    method: "euler" as const,
    steps: k,
    tStart: 0,
    tEnd: 1 - 1e-3,
    epsForm: "constant" as const,
    eps0: 0,
    lastStep: "none" as const,
    error: { model: "none" as const },
  };
  await integrate(
    interpolant({ schedule: "linear", gamma: "none" }),
    field,
    x,
    b,
    sampler,
    [],
    new Float64Array(b * D),
  );
  return x;
}

async function timeOnce(run: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await run();
  return (performance.now() - t0) / 1000;
}

async function peer(c: Case): Promise<number> {
  const out = await runPeer(
    [
      "/usr/bin/python3",
      `${PEERS}closed_form_torch.py`,
      "--N",
      `${c.n}`,
      "--d",
      `${D}`,
      "--B",
      `${c.b}`,
      "--K",
      `${c.k}`,
      "--threads",
      "2",
      "--repeats",
      "1",
    ],
    { OMP_WAIT_POLICY: "PASSIVE" },
  );
  const match = /median wall ([\d.]+) s -> ([\d.]+) samples\/s/.exec(out);
  if (!match) throw new Error(`closed_form_torch.py printed no timing:\n${out}`);
  return Number(match[2]);
}

/**
 * Why pruning cannot reach 10x at N = 60,000, K = 20: for a few queries on the exact float64
 * trajectory, how many training points each step must keep so that the dropped weight stays
 * below 1e-12 (logits within ln 1e12 of the best). Steps where that is most of N cost a full pass.
 */
function concentration(y: Float32Array, n: number, k: number, queries: number): number[] {
  const rng = new Rng(0, "bench-concentration");
  const x = Float64Array.from({ length: queries * D }, () => rng.normal());
  const logits = new Float64Array(n);
  const norms = new Float64Array(n);
  for (let i = 0; i < n; i++) for (let j = 0; j < D; j++) norms[i] += y[i * D + j] ** 2;
  const h = (1 - 1e-3) / k;
  const kept: number[] = [];
  for (let step = 0; step < k; step++) {
    const t = step * h;
    const s2 = (1 - t) ** 2;
    let total = 0;
    for (let q = 0; q < queries; q++) {
      let best = -Infinity;
      for (let i = 0; i < n; i++) {
        let dot = 0;
        for (let j = 0; j < D; j++) dot += x[q * D + j] * y[i * D + j];
        logits[i] = (t * dot - 0.5 * t * t * norms[i]) / s2;
        best = Math.max(best, logits[i]);
      }
      const m = new Float64Array(D);
      let sum = 0;
      for (let i = 0; i < n; i++) {
        if (best - logits[i] < Math.log(1e12)) total++;
        const w = Math.exp(logits[i] - best);
        sum += w;
        if (w > 0) { for (let j = 0; j < D; j++) m[j] += w * y[i * D + j]; }
      }
      for (let j = 0; j < D; j++) x[q * D + j] += (h * (m[j] / sum - x[q * D + j])) / (1 - t);
    }
    kept.push(total / queries);
  }
  return kept;
}

/** onnxruntime's fp32 GEMM, n x n x n, GFLOP/s: the ceiling of the fast field's two GEMMs. */
async function ortGemm(n: number): Promise<number> {
  const rng = new Rng(0, "bench-gemm");
  const g = new GraphBuilder("gemm");
  const a = g.input("a", "float", [n, n]);
  const b = g.constant("b", Float32Array.from({ length: n * n }, () => rng.normal()), [n, n]);
  g.node("MatMul", [a, b], { outputs: ["c"] });
  g.output("c", "float", [n, n]);
  const session = await createSession(g.build());
  const input = new ort.Tensor(
    "float32",
    Float32Array.from({ length: n * n }, () => rng.normal()),
    [n, n],
  );
  await session.run({ a: input });
  const walls: number[] = [];
  for (let r = 0; r < REPEATS; r++) walls.push(await timeOnce(() => session.run({ a: input })));
  const wall = median(walls);
  await session.release();
  return (2 * n ** 3) / wall / 1e9;
}

export async function benchClosedForm(_flags: string[]): Promise<void> {
  const train = await loadIdx(`${FASHION_MNIST_DIR}/train-images-idx3-ubyte.gz`, null);
  const rows: string[] = [];
  const lines: string[] = [];
  const ceiling = await gemmCeiling();
  const cases: Case[] = [{ name: "exact", n: 10000, b: 256, k: 50 }, {
    name: "pruned",
    n: 60000,
    b: 128,
    k: 20,
  }];
  for (const c of cases) {
    const y = new Float32Array(c.n * D);
    for (let i = 0; i < y.length; i++) y[i] = train.images[i] * 2 - 1;
    const rng = new Rng(0, "bench-closed-form");
    const x0 = Float64Array.from({ length: c.b * D }, () => rng.normal());
    const points = { y, n: c.n, d: D };
    // One onnxruntime call per query block of the batch's own size: the configuration a user would
    // pick for a large unconditional batch (closed-form's "block" option).
    const full = await onnxField(points, { block: c.b });
    const pruned = prunedField(full, points);
    await sampleOnce(full, x0.subarray(0, 8 * D), 8, 2); // warm-up
    let exactOut: Float64Array = new Float64Array(0);
    let prunedOut: Float64Array = new Float64Array(0);
    const rates = { exact: [] as number[], pruned: [] as number[], torch: [] as number[] };
    pruned.counts.certified = pruned.counts.full = 0;
    // Interleaved rounds (sia exact, sia pruned, peer, ...): drift hits all three alike.
    for (let r = 0; r < REPEATS; r++) {
      rates.exact.push(
        c.b / await timeOnce(async () => (exactOut = await sampleOnce(full, x0, c.b, c.k))),
      );
      rates.pruned.push(
        c.b / await timeOnce(async () => (prunedOut = await sampleOnce(pruned, x0, c.b, c.k))),
      );
      rates.torch.push(await peer(c));
    }
    const certified = pruned.counts.certified / (pruned.counts.certified + pruned.counts.full);
    await full.release();
    let maxDiff = 0;
    for (let j = 0; j < exactOut.length; j++) {
      maxDiff = Math.max(maxDiff, Math.abs(exactOut[j] - prunedOut[j]));
    }
    // Per sample: two GEMMs of N x d per step (logits and the weighted mean), 2 FLOPs each.
    const flopsPerSample = 4 * c.n * D * c.k;
    const [exact, fast, torch] = [spread(rates.exact), spread(rates.pruned), spread(rates.torch)];
    for (const [path, s] of [["exact", exact], ["pruned", fast]] as const) {
      const line = await reportComparison({
        bench: "closed-form",
        case: `${path}-n${c.n}-b${c.b}-k${c.k}`,
        sia: s,
        peer: torch,
        peerConfig: "torch 1.13",
        unit: "samples/s",
        flopsPerUnit: flopsPerSample,
        ceiling,
      });
      lines.push(JSON.stringify(line));
    }
    console.error(
      `closed-form ${c.name}: ${(100 * certified).toFixed(0)} % certified; ` +
        `max |pruned - exact| = ${(maxDiff / 2).toExponential(2)} on the [0, 1] scale`,
    );
    const gflops = (s: Spread) => ((s.median * flopsPerSample) / 1e9).toFixed(0);
    rows.push(
      `| N=${c.n}, B=${c.b}, K=${c.k} | ${formatSpread(torch, 1)} (${gflops(torch)} GFLOP/s) | ${
        formatSpread(exact, 1)
      } (${gflops(exact)} GFLOP/s) | ${(exact.median / torch.median).toFixed(2)}x | ${
        formatSpread(fast, 1)
      } | ${(fast.median / torch.median).toFixed(2)}x | ${(100 * certified).toFixed(0)} % | ${
        (maxDiff / 2).toExponential(1)
      } |`,
    );
  }
  const gemmOrt = await ortGemm(2048);
  console.log(
    `GEMM 2048^3, 2 threads: onnxruntime ${gemmOrt.toFixed(0)} GFLOP/s, torch ${
      ceiling.toFixed(0)
    } GFLOP/s`,
  );
  const y60 = new Float32Array(60000 * D);
  for (let i = 0; i < y60.length; i++) y60[i] = train.images[i] * 2 - 1;
  const kept = concentration(y60, 60000, 20, 4);
  const fullPasses = kept.reduce((s, c) => s + c / 60000, 0);
  console.log(
    `concentration (N=60000, K=20): ${kept.map((c) => Math.round(c)).join(" ")}; ${
      fullPasses.toFixed(1)
    } full passes`,
  );
  await writeSection(
    "closed-form",
    `## Closed-form sampler vs PyTorch (${new Date().toISOString().slice(0, 10)})

\`deno task bench closed-form\` (runs \`OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 ../shared/peers/closed_form_torch.py --threads 2\`
in the same run, without OPENBLAS_CORETYPE so OpenBLAS picks its own kernel). Linear interpolant, Fashion-MNIST
train scaled to [-1, 1], Euler over [0, 1 - 1e-3], 2 threads each, ${REPEATS} interleaved rounds (sia exact, sia pruned, peer):
median (min-max). Ratios only where the peer ran healthy (its GFLOP/s, 4 N d K per sample, at least
0.7 of its best share on record of torch's GEMM ceiling measured in the same run). "pruned" skips the
O(N d) work for queries certified one-hot (dropped weight <= 1e-12, \`stages/generate/interpolant/pruned.ts\`);
"certified" is the share of query evaluations answered by the certificate; the last column is the largest
difference between pruned and exact outputs from the same noise, on the data's [0, 1] scale.

| configuration | torch samples/s | sia exact samples/s | exact / torch | sia pruned samples/s | pruned / torch | certified | max diff |
|---|---|---|---|---|---|---|---|
${rows.join("\n")}

${healthNote(lines)}

\`\`\`
${lines.join("\n")}
\`\`\`

**Where the exact path's time goes at N = 10,000.** The GEMMs run at the machine's ceiling: GEMM 2048^3
on 2 threads, same run: onnxruntime ${gemmOrt.toFixed(0)} GFLOP/s, torch
(\`matmul_peak.py --backend torch --threads 2\`) ${
      ceiling.toFixed(0)
    } GFLOP/s. The rest of the field is:
the softmax passes and top-k over the B x N logits inside the graph, and the float64 refinement of
the winners in JavaScript (exact distances, only for candidates within the float32 error margin of
the best), where PyTorch runs one fused softmax; together they cost about what PyTorch's softmax does. At N = 60,000 the peer's softmax over a 128 x 60,000 matrix
costs it more and sia is ahead. Tried and dropped: the
GEMMs through OpenBLAS by Deno's FFI (300 GFLOP/s alone) with the softmax between them in an
onnxruntime graph or in WebAssembly SIMD: with two thread pools sharing two cores the whole field
ran at 95 to 120 GFLOP/s, below the single onnxruntime graph.

**Why the pruned path cannot reach 10x here.** Training points each Euler step must keep so the
dropped weight stays below 1e-12 (mean over 4 queries on the exact float64 trajectory, N = 60,000,
K = 20, measured by the same command): ${kept.map((c) => Math.round(c)).join(", ")}. Any exact
pruning still pays about ${fullPasses.toFixed(1)} full passes over the training set out of 20: the
weights stay dense for the first third of the trajectory, so the work can shrink by at most
${(20 / fullPasses).toFixed(1)}x against the peer's 20 passes, not 10x, whatever the candidate
search costs.`,
  );
}
