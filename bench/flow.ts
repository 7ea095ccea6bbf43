// The trained flow's speed against the same U-Net in PyTorch (bench/peers/unet_torch.py builds
// it from sia's own block description, so both sides run one network, parameter for parameter):
// training steps/s (interpolant regression, Adam, batch 64, 28x28x1) and ODE sampling samples/s
// (20 Euler steps, batch 64), sia and every peer configuration interleaved in one run (sia,
// default, channels-last, sia, ...), medians with min and max, the peer's GFLOP/s beside the
// machine's GEMM ceiling measured in the same run, and one JSON line per comparison.

import { createSession, ort } from "../core/onnx.ts";
import { Rng } from "../core/rng.ts";
import { paramSpecs, UNET_PRESETS, velocityUnet } from "../stages/learn/blocks/model.ts";
import { FlowLearner } from "../stages/learn/flow.ts";
import { timedForwardModel } from "../stages/learn/graph/forward.ts";
import {
  formatSpread,
  forwardMacs,
  gemmCeiling,
  healthNote,
  reportComparison,
  runPeer,
  spread,
  writeSection,
} from "./report.ts";

const BATCH = 64;
const SHAPE = [28, 28, 1] as const;
const STEPS = 10;
const SAMPLE_STEPS = 20;
const ROUNDS = 3;

interface Rates {
  train: number;
  sample: number;
}

async function sia(preset: string): Promise<Rates> {
  const rng = new Rng(0, "bench-flow");
  const images = Float32Array.from({ length: 256 * 784 }, () => rng.uniform());
  const learner = await FlowLearner.create(images, SHAPE, {
    preset,
    batch: BATCH,
    lr: 1e-3,
    warmup: 0,
    steps: 1000,
    ema: 0,
    clip: 0,
    target: "velocity",
    interpolant: { schedule: "linear", gamma: "none" },
    efmExtra: 0,
    seed: 0,
  });
  for (let i = 0; i < 2; i++) await learner.step();
  let t0 = performance.now();
  for (let i = 0; i < STEPS; i++) await learner.step();
  const train = STEPS / ((performance.now() - t0) / 1000);
  // Sampling through the exported graph (weights as constants, as the generator loads it).
  const session = await createSession(
    timedForwardModel(learner.blocks, learner.chw, learner.weights()),
  );
  await learner.release();
  const x = Float32Array.from({ length: BATCH * 784 }, () => rng.normal());
  const euler = async () => {
    const dt = 1 / SAMPLE_STEPS;
    for (let k = 0; k < SAMPLE_STEPS; k++) {
      const out = await session.run({
        x: new ort.Tensor("float32", x, [BATCH, 1, 28, 28]),
        t: new ort.Tensor("float32", new Float32Array(BATCH).fill(k * dt), [BATCH]),
      });
      const v = out.out.data as Float32Array;
      for (let i = 0; i < x.length; i++) x[i] += dt * v[i];
    }
  };
  await euler();
  t0 = performance.now();
  await euler();
  const sample = BATCH / ((performance.now() - t0) / 1000);
  await session.release();
  return { train, sample };
}

async function peer(python: string, blocksFile: string, channelsLast: boolean): Promise<Rates> {
  const args = [
    python,
    new URL("./peers/unet_torch.py", import.meta.url).pathname,
    "--blocks",
    blocksFile,
    "--shape",
    "1,28,28",
    "--batch",
    `${BATCH}`,
    "--threads",
    "2",
    "--steps",
    `${STEPS}`,
    "--repeats",
    "1",
    "--sample-steps",
    `${SAMPLE_STEPS}`,
  ];
  if (channelsLast) args.push("--channels-last");
  const out = await runPeer(args, { OMP_WAIT_POLICY: "PASSIVE" });
  const train = /train: ([\d.]+) steps\/s/.exec(out);
  const sample = /sample: ([\d.]+) samples\/s/.exec(out);
  if (!train || !sample) throw new Error(`unet_torch.py printed no rates:\n${out}`);
  return { train: Number(train[1]), sample: Number(sample[1]) };
}

export async function benchFlow(_flags: string[]): Promise<void> {
  const preset = "tiny";
  const blocks = velocityUnet(1, UNET_PRESETS[preset]);
  const blocksFile = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.writeTextFile(blocksFile, JSON.stringify(blocks));
  const configs: { name: string; python: string; channelsLast: boolean }[] = [
    { name: "torch 1.13", python: "/usr/bin/python3", channelsLast: false },
    { name: "torch 1.13 channels-last", python: "/usr/bin/python3", channelsLast: true },
  ];
  const torch2 = Deno.env.get("SIA_TORCH2");
  if (torch2) {
    configs.push({ name: "torch 2.x", python: torch2, channelsLast: false });
    configs.push({ name: "torch 2.x channels-last", python: torch2, channelsLast: true });
  }
  const ceiling = await gemmCeiling();
  const ours: Rates[] = [];
  const theirs = new Map<string, Rates[]>(configs.map((c) => [c.name, []]));
  for (let r = 0; r < ROUNDS; r++) {
    ours.push(await sia(preset));
    for (const c of configs) {
      theirs.get(c.name)!.push(await peer(c.python, blocksFile, c.channelsLast));
    }
  }
  await Deno.remove(blocksFile);
  const params = paramSpecs(blocks, [1, 28, 28]).reduce(
    (s, p) => s + p.shape.reduce((a, b) => a * b, 1),
    0,
  );
  const forwardFlops = 2 * forwardMacs(blocks, [1, 28, 28]);
  // A training step is about 3 forward passes of work (forward, input and weight gradients) per
  // image; a sample is SAMPLE_STEPS forward passes.
  const flopsPer = { train: 3 * forwardFlops * BATCH, sample: SAMPLE_STEPS * forwardFlops };
  const rows: string[] = [];
  const lines: string[] = [];
  for (const unit of ["train", "sample"] as const) {
    const sia = spread(ours.map((o) => o[unit]));
    let best = { name: "", s: spread([0]) };
    for (const c of configs) {
      const s = spread(theirs.get(c.name)!.map((o) => o[unit]));
      if (s.median > best.s.median) best = { name: c.name, s };
      const gflops = (s.median * flopsPer[unit]) / 1e9;
      rows.push(
        `| ${unit} | ${c.name} | ${formatSpread(s)} | ${gflops.toFixed(0)} (${
          ((100 * gflops) / ceiling).toFixed(0)
        } % of ${ceiling.toFixed(0)}) |`,
      );
    }
    rows.push(`| ${unit} | **sia** | ${formatSpread(sia)} | |`);
    const line = await reportComparison({
      bench: "flow",
      case: unit === "train"
        ? `train-${preset}-28x28-b${BATCH}`
        : `sample-ode${SAMPLE_STEPS}-${preset}-b${BATCH}`,
      sia,
      peer: best.s,
      peerConfig: best.name,
      unit: unit === "train" ? "steps/s" : "samples/s",
      flopsPerUnit: flopsPer[unit],
      ceiling,
    });
    lines.push(JSON.stringify(line));
  }
  await writeSection(
    "flow",
    `## Trained flow vs PyTorch (${new Date().toISOString().slice(0, 10)})

\`deno task bench flow\`: the ${preset} velocity U-Net (${
      params.toLocaleString("en")
    } parameters, 28x28x1),
batch ${BATCH}, 2 threads. Training: one Adam step of the interpolant regression (sia's compiled graph via
\`FlowLearner.step\`, draws included; PyTorch eager autograd). Sampling: ${SAMPLE_STEPS} Euler steps of the ODE
(sia through the exported flow.onnx; PyTorch under \`inference_mode\`). Peer: \`bench/peers/unet_torch.py\`, built from
the same block description. ${ROUNDS} interleaved rounds (sia, each peer configuration, ...): median (min-max).
Peer GFLOP/s: ${
      (flopsPer.train / 1e9).toFixed(1)
    } GFLOP per training step (3 x the forward's multiply-adds x 2), ${
      (flopsPer.sample / 1e9).toFixed(2)
    } GFLOP per sample, against torch's GEMM 2048^3 on 2 threads in the same
run (${ceiling.toFixed(0)} GFLOP/s).

| what | who | rate | peer GFLOP/s (share of GEMM) |
|---|---|---|---|
${rows.join("\n")}

${healthNote(lines)}

\`\`\`
${lines.join("\n")}
\`\`\``,
  );
}
