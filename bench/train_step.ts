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
import { median, PEERS, runPeer, writeSection } from "./report.ts";

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

async function sia(model: Model): Promise<number> {
  const graph = stepGraph(model);
  const trainer = await Trainer.create(graph, 0, [2 * BATCH, ...model.input]);
  const rng = new Rng(0, "bench-views");
  const x = Float32Array.from(
    { length: 2 * BATCH * model.input.reduce((a, b) => a * b, 1) },
    () => rng.uniform(),
  );
  for (let i = 0; i < 2; i++) await trainer.step(x, { lr: 0.1 });
  const walls: number[] = [];
  for (let r = 0; r < model.repeats; r++) {
    const t0 = performance.now();
    for (let i = 0; i < model.steps; i++) await trainer.step(x, { lr: 0.1 });
    walls.push((performance.now() - t0) / 1000);
  }
  await trainer.release();
  return (model.steps * BATCH) / median(walls);
}

async function peer(model: Model, channelsLast: boolean): Promise<number> {
  const args = [
    "/usr/bin/python3",
    `${PEERS}simclr_torch.py`,
    "--model",
    model.name,
    "--threads",
    "2",
  ];
  args.push("--steps", `${model.steps}`, "--repeats", `${model.repeats}`, "--warmup", "2");
  if (channelsLast) args.push("--channels-last");
  const out = await runPeer(args, { OMP_WAIT_POLICY: "PASSIVE" });
  const match = /-> ([\d.]+) images\(2 views each\)\/s/.exec(out);
  if (!match) throw new Error(`simclr_torch.py printed no rate:\n${out}`);
  return Number(match[1]);
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

export async function benchTrainStep(_flags: string[]): Promise<void> {
  const rows: string[] = [];
  for (const model of MODELS) {
    const ours = await sia(model);
    const torch = await peer(model, false);
    const torchCl = model.name === "smallcnn" ? await peer(model, true) : NaN;
    const best = Number.isNaN(torchCl) ? torch : Math.max(torch, torchCl);
    console.log(
      `train step ${model.name}: sia ${ours.toFixed(1)} images/s, torch ${
        torch.toFixed(1)
      }, channels-last ${torchCl.toFixed(1)}`,
    );
    rows.push(
      `| ${model.name} | ${torch.toFixed(1)} | ${
        Number.isNaN(torchCl) ? "-" : torchCl.toFixed(1)
      } | ${ours.toFixed(1)} | ${(ours / best).toFixed(2)}x |`,
    );
  }
  const ops = await profile(MODELS[0]);
  const total = ops.reduce((s, [, ms]) => s + ms, 0);
  console.log(ops.slice(0, 8).map(([op, ms]) => `${op} ${ms.toFixed(0)} ms`).join(", "));
  await writeSection(
    "train-step",
    `## SimCLR training step vs PyTorch (${new Date().toISOString().slice(0, 10)})

\`deno task bench train-step\`: forward, NT-Xent (tau 0.5), backward, SGD (momentum 0.9, weight decay 1e-6),
batch 256 = 512 views, 2 threads, one onnxruntime graph per step (\`stages/learn/graph/train_step.ts\`), against
\`OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 ../shared/peers/simclr_torch.py --threads 2 [--channels-last]\` in the same
run. Images per second (pairs of views); the ratio is against the peer's best configuration. ResNet-18 is timed
over 2 steps, once, on both sides (a step takes seconds).

| model | torch images/s | torch channels-last | sia images/s | sia / best torch |
|---|---|---|---|---|
${rows.join("\n")}

onnxruntime's per-node profile of the small-CNN step (ms per step by op type, ${
      total.toFixed(0)
    } ms in all):

| op | ms per step | share |
|---|---|---|
${
      ops.slice(0, 12).map(([op, ms]) =>
        `| ${op} | ${ms.toFixed(1)} | ${((100 * ms) / total).toFixed(0)} % |`
      ).join("\n")
    }`,
  );
}
