// The SimCLR training step (forward, NT-Xent, backward, SGD momentum 0.9, weight decay 1e-6;
// batch 256 = 512 views) compiled to one onnxruntime graph, against the PyTorch peer
// (../shared/peers/simclr_torch.py) in the same run, for the small CNN and the CIFAR ResNet-18;
// plus onnxruntime's per-node profile of the small-CNN step, largest items first.

import { ort } from "../core/onnx.ts";
import { Rng } from "../core/rng.ts";
import { projectionHead, resnet18Cifar, smallCnn } from "../stages/learn/blocks/model.ts";
import type { Block } from "../stages/learn/blocks/model.ts";
import { trainStep } from "../stages/learn/graph/train_step.ts";
import { Trainer } from "../stages/learn/graph/trainer.ts";
import {
  formatSpread,
  forwardMacs,
  gemmCeiling,
  healthNote,
  PEERS,
  reportComparison,
  runPeer,
  spread,
  writeSection,
} from "./report.ts";

const BATCH = 256;

interface Model {
  readonly name: "smallcnn" | "resnet18";
  readonly blocks: Block[];
  readonly input: [number, number, number];
  /** Timed steps per repeat (ResNet-18 steps take seconds). */
  readonly steps: number;
  readonly repeats: number;
}

const MODELS: Model[] = [
  {
    name: "smallcnn",
    blocks: [...smallCnn(), ...projectionHead(128, 128), { kind: "l2norm" }],
    input: [28, 28, 1],
    steps: 10,
    repeats: 3,
  },
  {
    name: "resnet18",
    blocks: [...resnet18Cifar(), ...projectionHead(512, 128), { kind: "l2norm" }],
    input: [32, 32, 3],
    steps: 2,
    repeats: 1,
  },
];

/** The peer's step: NT-Xent tau 0.5, SGD momentum 0.9, weight decay 1e-6, no clipping. */
function stepGraph(model: Model) {
  return trainStep({
    blocks: model.blocks,
    input: model.input,
    batch: BATCH,
    loss: { kind: "ntxent", tau: 0.5 },
    optimizer: { kind: "sgd", momentum: 0.9, weightDecay: 1e-6 },
    clip: 0,
  });
}

/** One timed round of sia's step: images/s of each repeat, and the engine that ran it. */
async function sia(
  model: Model,
  engine: "auto" | "onnxruntime" = "auto",
): Promise<{ rates: number[]; engine: string }> {
  const graph = stepGraph(model);
  const trainer = await Trainer.create(graph, 0, [2 * BATCH, ...model.input], undefined, engine);
  const rng = new Rng(0, "bench-views");
  const x = Float32Array.from(
    { length: 2 * BATCH * model.input.reduce((a, b) => a * b, 1) },
    () => rng.uniform(),
  );
  for (let i = 0; i < 2; i++) await trainer.step(x, { lr: 0.1 });
  const rates: number[] = [];
  for (let r = 0; r < model.repeats; r++) {
    const t0 = performance.now();
    for (let i = 0; i < model.steps; i++) await trainer.step(x, { lr: 0.1 });
    rates.push((model.steps * BATCH) / ((performance.now() - t0) / 1000));
  }
  const name = trainer.engine;
  await trainer.release();
  return { rates, engine: name };
}

interface PeerConfig {
  readonly name: string;
  readonly python: string;
  readonly channelsLast: boolean;
}

/** Every peer configuration: PyTorch 1.13 (Debian) and, when SIA_TORCH2 names its python, 2.x. */
function peerConfigs(): PeerConfig[] {
  const pythons: [string, string][] = [["torch 1.13", "/usr/bin/python3"]];
  const torch2 = Deno.env.get("SIA_TORCH2");
  if (torch2) pythons.push(["torch 2.x", torch2]);
  return pythons.flatMap(([name, python]) => [
    { name, python, channelsLast: false },
    { name: `${name} channels-last`, python, channelsLast: true },
  ]);
}

/** One round of the peer: the images/s of each of its repeats. */
async function peer(model: Model, config: PeerConfig): Promise<number[]> {
  const args = [config.python, `${PEERS}simclr_torch.py`, "--model", model.name];
  args.push("--threads", "2", "--steps", `${model.steps}`, "--repeats", `${model.repeats}`);
  args.push("--warmup", "2");
  if (config.channelsLast) args.push("--channels-last");
  const out = await runPeer(args, { OMP_WAIT_POLICY: "PASSIVE" });
  const match = /-> ([\d.]+) images\(2 views each\)\/s/.exec(out);
  if (!match) throw new Error(`simclr_torch.py printed no rate:\n${out}`);
  // The peer reports its median; its repeats are the spread this bench's rounds give.
  return [Number(match[1])];
}

/** onnxruntime's per-node profile of a few small-CNN steps: op type -> milliseconds per step. */
async function profile(model: Model): Promise<[string, number][]> {
  const graph = stepGraph(model);
  const dir = await Deno.makeTempDir();
  const session = await ort.InferenceSession.create(graph.model, {
    intraOpNumThreads: navigator.hardwareConcurrency,
    enableProfiling: true,
    profileFilePrefix: `${dir}/profile`,
    graphOptimizationLevel: "all",
  });
  const feeds: Record<string, ort.Tensor> = {};
  const rng = new Rng(1, "bench-profile");
  feeds.x = new ort.Tensor(
    "float32",
    Float32Array.from(
      { length: 2 * BATCH * model.input.reduce((a, b) => a * b, 1) },
      () => rng.uniform(),
    ),
    [2 * BATCH, ...model.input],
  );
  for (const { name, shape } of [...graph.params, ...graph.state]) {
    feeds[name] = new ort.Tensor(
      "float32",
      new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.01),
      [...shape],
    );
  }
  feeds.lr = new ort.Tensor("float32", Float32Array.of(0.1), []);
  const steps = 3;
  for (let i = 0; i < steps; i++) await session.run(feeds);
  session.endProfiling();
  await session.release();
  // onnxruntime names the file itself (prefix + timestamp).
  const file = [...Deno.readDirSync(dir)].find((e) => e.name.endsWith(".json"));
  if (!file) throw new Error("onnxruntime wrote no profile");
  const events = JSON.parse(await Deno.readTextFile(`${dir}/${file.name}`)) as {
    cat: string;
    dur: number;
    args?: { op_name?: string };
  }[];
  await Deno.remove(dir, { recursive: true });
  const byOp = new Map<string, number>();
  for (const e of events) {
    if (e.cat !== "Node" || !e.args?.op_name) continue;
    byOp.set(e.args.op_name, (byOp.get(e.args.op_name) ?? 0) + e.dur / 1000 / steps);
  }
  return [...byOp.entries()].sort((a, b) => b[1] - a[1]);
}

const ROUNDS = 3;

/** `--models=smallcnn,resnet18` picks the models (both by default). */
export async function benchTrainStep(flags: string[]): Promise<void> {
  const picked = flags.find((f) => f.startsWith("--models="))?.slice("--models=".length).split(",");
  const models = MODELS.filter((m) => !picked || picked.includes(m.name));
  const ceiling = await gemmCeiling();
  const rows: string[] = [];
  const lines: string[] = [];
  for (const model of models) {
    // A peer configuration that cannot run this model (a PyTorch 2.x venv without torchvision
    // has no ResNet-18) is left out with a line saying so.
    const configs: PeerConfig[] = [];
    for (const config of peerConfigs()) {
      try {
        await runPeer([config.python, "-c", model.name === "resnet18" ? "import torchvision" : ""]);
        configs.push(config);
      } catch {
        console.error(
          `bench train-step ${model.name}: ${config.name} cannot run it (no torchvision)`,
        );
      }
    }
    const ours: number[] = [];
    const fallback: number[] = [];
    let engine = "";
    const theirs = new Map<string, number[]>(configs.map((c) => [c.name, []]));
    // Interleaved rounds (sia, each peer configuration, sia, ...): drift hits both sides alike.
    for (let r = 0; r < ROUNDS; r++) {
      const round = await sia(model);
      ours.push(...round.rates);
      // The one-graph onnxruntime step beside it, for the record of what the oneDNN engine won
      // (the small CNN only: a ResNet-18 one-graph step takes most of a minute).
      if (model.name === "smallcnn" && round.engine !== "onnxruntime") {
        fallback.push(...(await sia(model, "onnxruntime")).rates);
      }
      engine = round.engine;
      for (const c of configs) theirs.get(c.name)!.push(...await peer(model, c));
    }
    // Two views per image, each forward plus about two forwards' work backward.
    const flopsPerImage = 2 * 3 * 2 * forwardMacs(model.blocks, [
      model.input[2],
      model.input[0],
      model.input[1],
    ]);
    const siaRate = spread(ours);
    let best = { name: "", s: spread([0]) };
    for (const c of configs) {
      const s = spread(theirs.get(c.name)!);
      if (s.median > best.s.median) best = { name: c.name, s };
      const gflops = (s.median * flopsPerImage) / 1e9;
      rows.push(
        `| ${model.name} | ${c.name} | ${formatSpread(s, 1)} | ${gflops.toFixed(0)} (${
          ((100 * gflops) / ceiling).toFixed(0)
        } %) |`,
      );
    }
    rows.push(`| ${model.name} | **sia** (${engine}) | ${formatSpread(siaRate, 1)} | |`);
    if (fallback.length) {
      rows.push(
        `| ${model.name} | sia, one onnxruntime graph | ${formatSpread(spread(fallback), 1)} | |`,
      );
    }
    const line = await reportComparison({
      bench: "train-step",
      case: model.name,
      sia: siaRate,
      peer: best.s,
      peerConfig: best.name,
      unit: "images/s",
      flopsPerUnit: flopsPerImage,
      ceiling,
    });
    lines.push(JSON.stringify(line));
  }
  const ops = await profile(MODELS[0]);
  const total = ops.reduce((s, [, ms]) => s + ms, 0);
  console.error(ops.slice(0, 8).map(([op, ms]) => `${op} ${ms.toFixed(0)} ms`).join(", "));
  await writeSection(
    "train-step",
    `## SimCLR training step vs PyTorch (${new Date().toISOString().slice(0, 10)})

\`deno task bench train-step\`: forward, NT-Xent (tau 0.5), backward, SGD (momentum 0.9, weight decay 1e-6),
batch 256 = 512 views, 2 threads, against
\`OMP_WAIT_POLICY=PASSIVE python3 ../shared/peers/simclr_torch.py --threads 2 [--channels-last]\` (PyTorch 1.13
from Debian; a 2.x venv too when \`SIA_TORCH2\` names its python) in the same run, ${ROUNDS} interleaved rounds
(sia, each peer configuration, sia, ...). Images per second (pairs of views): median (min-max). The ratio is
against the peer's best configuration, and only where the peer ran healthy: its GFLOP/s (2 views x 3
forwards' multiply-adds x 2 per image) at least 0.7 of its best recorded share of the machine's GEMM ceiling,
torch's 2048^3 matmul on 2 threads measured in the same run: **${
      ceiling.toFixed(0)
    } GFLOP/s**. sia's engine
is named beside its rate (oneDNN through FFI where libdnnl2 is installed, else one onnxruntime graph).

| model | who | images/s | peer GFLOP/s (share of GEMM) |
|---|---|---|---|
${rows.join("\n")}

${healthNote(lines)}

\`\`\`
${lines.join("\n")}
\`\`\`

onnxruntime's per-node profile of the small-CNN step as one onnxruntime graph (ms per step by op type,
${total.toFixed(0)} ms in all):

| op | ms per step | share |
|---|---|---|
${
      ops.slice(0, 12).map(([op, ms]) =>
        `| ${op} | ${ms.toFixed(1)} | ${((100 * ms) / total).toFixed(0)} % |`
      ).join("\n")
    }`,
  );
}
