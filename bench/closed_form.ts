// The closed-form sampler against the PyTorch peer (../shared/peers/closed_form_torch.py), same
// maths, same data, same machine, one run: linear interpolant, Fashion-MNIST scaled to [-1, 1],
// Euler over [0, 1 - 1e-3] in K steps, B samples, 2 threads. Two configurations:
//   exact:  N = 10,000, B = 256, K = 50 (the full B N d work every step)
//   pruned: N = 60,000, B = 128, K = 20 (certified one-hot queries skip the O(N d) work), with
//           the largest difference from the exact path from the same noise.

import { Rng } from "../core/rng.ts";
import { onnxField } from "../stages/generate/interpolant/onnx_field.ts";
import { prunedField } from "../stages/generate/interpolant/pruned.ts";
import type { Field } from "../stages/generate/interpolant/field.ts";
import { integrate } from "../stages/generate/interpolant/samplers.ts";
import { interpolant } from "../stages/generate/interpolant/schedule.ts";
import { loadIdx } from "../stages/load/idx.ts";
import { FASHION_MNIST_DIR } from "../stages/load/resolve.ts";
import { median, PEERS, runPeer, writeSection } from "./report.ts";

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

async function timeIt(run: () => Promise<unknown>): Promise<number> {
  const walls: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    const t0 = performance.now();
    await run();
    walls.push((performance.now() - t0) / 1000);
  }
  return median(walls);
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
    ],
    { OMP_WAIT_POLICY: "PASSIVE" },
  );
  const match = /median wall ([\d.]+) s -> ([\d.]+) samples\/s/.exec(out);
  if (!match) throw new Error(`closed_form_torch.py printed no timing:\n${out}`);
  return Number(match[2]);
}

export async function benchClosedForm(_flags: string[]): Promise<void> {
  const train = await loadIdx(`${FASHION_MNIST_DIR}/train-images-idx3-ubyte.gz`, null);
  const rows: string[] = [];
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
    const full = await onnxField(points);
    const pruned = prunedField(full, points);
    await sampleOnce(full, x0.subarray(0, 8 * D), 8, 2); // warm-up
    let exactOut: Float64Array = new Float64Array(0);
    let prunedOut: Float64Array = new Float64Array(0);
    const exactWall = await timeIt(async () => (exactOut = await sampleOnce(full, x0, c.b, c.k)));
    pruned.counts.certified = pruned.counts.full = 0;
    const prunedWall = await timeIt(
      async () => (prunedOut = await sampleOnce(pruned, x0, c.b, c.k)),
    );
    const certified = pruned.counts.certified / (pruned.counts.certified + pruned.counts.full);
    await full.release();
    let maxDiff = 0;
    for (let j = 0; j < exactOut.length; j++) {
      maxDiff = Math.max(maxDiff, Math.abs(exactOut[j] - prunedOut[j]));
    }
    const torch = await peer(c);
    const gflop = (4 * c.b * c.n * D * c.k) / 1e9;
    const sExact = c.b / exactWall;
    const sPruned = c.b / prunedWall;
    console.log(
      `closed-form ${c.name}: N=${c.n} B=${c.b} K=${c.k}: sia exact ${
        sExact.toFixed(1)
      } samples/s ` +
        `(${(gflop / exactWall).toFixed(0)} GFLOP/s), sia pruned ${sPruned.toFixed(1)} samples/s ` +
        `(${(100 * certified).toFixed(0)} % certified), torch ${torch.toFixed(1)} samples/s; ` +
        `max |pruned - exact| = ${(maxDiff / 2).toExponential(2)} on the [0, 1] scale`,
    );
    rows.push(
      `| N=${c.n}, B=${c.b}, K=${c.k} | ${torch.toFixed(1)} | ${sExact.toFixed(1)} (${
        (gflop / exactWall).toFixed(0)
      } GFLOP/s) | ${(sExact / torch).toFixed(2)}x | ${sPruned.toFixed(1)} | ${
        (sPruned / torch).toFixed(2)
      }x | ${(100 * certified).toFixed(0)} % | ${(maxDiff / 2).toExponential(1)} |`,
    );
  }
  await writeSection(
    "closed-form",
    `## Closed-form sampler vs PyTorch (${new Date().toISOString().slice(0, 10)})

\`deno task bench closed-form\` (runs \`OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 ../shared/peers/closed_form_torch.py --threads 2\`
in the same run, without OPENBLAS_CORETYPE so OpenBLAS picks its own kernel). Linear interpolant, Fashion-MNIST
train scaled to [-1, 1], Euler over [0, 1 - 1e-3], 2 threads each, median of ${REPEATS} runs. "pruned" skips the
O(N d) work for queries certified one-hot (dropped weight <= 1e-12, \`stages/generate/interpolant/pruned.ts\`);
"certified" is the share of query evaluations answered by the certificate; the last column is the largest
difference between pruned and exact outputs from the same noise, on the data's [0, 1] scale.

| configuration | torch samples/s | sia exact samples/s | exact / torch | sia pruned samples/s | pruned / torch | certified | max diff |
|---|---|---|---|---|---|---|---|
${rows.join("\n")}`,
  );
}
