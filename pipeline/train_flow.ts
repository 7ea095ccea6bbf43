// `train-flow`: fits the velocity U-Net to a training set on the compiled substrate, with progress,
// atomic checkpoints every `every` steps, an exact resume, Ctrl-C that keeps the last checkpoint,
// and a log of the train loss, the held-out loss and the estimation error delta(t) against the
// exact closed-form b* (Theorem 3's quantity), per time bin, as CSV and a figure. At the end the
// network is exported as DIR/flow.onnx with its model contract DIR/flow.json, checked against
// the tfjs oracle first.

import { fileError, keyError } from "../core/errors.ts";
import { atomicWrite, atomicWriteText, checkWritableDir, sha256Hex } from "../core/files.ts";
import { writeFigure } from "../core/plot/figure.ts";
import { Rng } from "../core/rng.ts";
import { resolveSection } from "../core/schema.ts";
import type { Resolved, Section } from "../core/schema.ts";
import { LATENT_NOISES, SCHEDULES } from "../stages/generate/interpolant/schedule.ts";
import { UNET_PRESETS } from "../stages/learn/blocks/model.ts";
import { loadCheckpoint, saveCheckpoint } from "../stages/learn/graph/checkpoint.ts";
import { FLOW_TARGETS, FlowLearner, T_MAX, toFlowRange } from "../stages/learn/flow.ts";
import { subset } from "../stages/load/dataset.ts";
import { loadSplits } from "../stages/load/resolve.ts";
import type { Dataset } from "../core/batch.ts";
import { DATA_SECTION } from "./config.ts";
import { Progress } from "./progress.ts";
import type { ProgressOptions } from "./progress.ts";

export const FLOW_SECTION = {
  preset: {
    type: "enum",
    values: Object.keys(UNET_PRESETS),
    default: "tiny",
    doc: "velocity U-Net preset: tiny (16-32-32), small (32-64-64)",
  },
  steps: { type: "int", min: 1, default: 2000, doc: "training steps" },
  batch: { type: "int", min: 1, default: 64, doc: "images per step" },
  lr: { type: "number", above: 0, default: 2e-3, doc: "Adam learning rate (cosine decay)" },
  warmup: { type: "int", min: 0, default: 100, doc: "linear warm-up steps" },
  ema: { type: "number", min: 0, max: 0.99999, default: 0.999, doc: "EMA decay (0 = off)" },
  clip: { type: "number", min: 0, default: 1, doc: "global gradient-norm clip (0 = off)" },
  target: {
    type: "enum",
    values: FLOW_TARGETS,
    default: "velocity",
    doc: "regression target: velocity, denoiser (x1), noise (x0), efm (empirical flow matching)",
  },
  schedule: { type: "enum", values: SCHEDULES, default: "linear", doc: "alpha, beta family" },
  gamma: { type: "enum", values: LATENT_NOISES, default: "none", doc: "latent noise gamma(t)" },
  efmExtra: {
    type: "int",
    min: 0,
    default: 256,
    doc: "efm: training images besides the minibatch in the target (>= N: the exact b*)",
  },
  seed: { type: "int", min: 0, default: 0, doc: "seed of the weights and of every draw" },
  every: { type: "int", min: 1, default: 500, doc: "checkpoint every this many steps" },
  evalEvery: { type: "int", min: 1, default: 250, doc: "log held-out loss and delta(t) every" },
  evalPairs: { type: "int", min: 1, default: 16, doc: "(t, x) pairs per time bin for delta(t)" },
  bins: { type: "int", min: 1, default: 10, doc: "time bins of delta(t) on [0, 1)" },
} as const satisfies Section;

export type FlowConfig = Resolved<typeof FLOW_SECTION> & {
  data: Resolved<typeof DATA_SECTION>;
  out: string;
};

/** Flags and --set assignments (flow keys bare, data keys as data.*) into a checked config. */
export function resolveFlowConfig(data: string, out: string, sets: readonly string[]): FlowConfig {
  const flow: Record<string, unknown> = {};
  const dataRaw: Record<string, unknown> = { source: data, size: 1024 };
  for (const assignment of sets) {
    const eq = assignment.indexOf("=");
    if (eq <= 0) throw keyError("--set", `expected key=value, got "${assignment}"`);
    const key = assignment.slice(0, eq);
    const text = assignment.slice(eq + 1);
    const [target, name, section, prefix] = key.startsWith("data.")
      ? [dataRaw, key.slice(5), DATA_SECTION as Section, "data."]
      : [flow, key, FLOW_SECTION as Section, ""];
    const field = section[name];
    target[name] = field && field.type !== "string" && field.type !== "enum"
      ? parseNumberish(prefix + name, text)
      : text;
  }
  return {
    ...resolveSection(FLOW_SECTION, flow, ""),
    data: resolveSection(DATA_SECTION, dataRaw, "data."),
    out,
  };
}

function parseNumberish(key: string, text: string): unknown {
  if (text === "true" || text === "false") return text === "true";
  const v = Number(text);
  if (text.trim() === "" || !Number.isFinite(v)) {
    throw keyError(key, `expected a number, got "${text}"`);
  }
  return v;
}

export interface TrainFlowOptions {
  readonly resume: boolean;
  readonly log: (line: string) => void;
  readonly progress?: Partial<ProgressOptions>;
  readonly stop?: Promise<void>;
  /**
   * The training images already loaded (Table 3 trains on its own subset); config.data then only
   * describes them. The test split feeds the held-out loss.
   */
  readonly data?: { readonly train: Dataset; readonly test: Dataset | null };
}

export interface TrainFlowResult {
  readonly steps: number;
  readonly interrupted: boolean;
  readonly dir: string;
}

/** One row of log.csv. */
interface LogRow {
  step: number;
  epoch: number;
  lr: number;
  trainLoss: number;
  heldoutLoss: number;
  delta: number[];
}

const CHECKPOINT = "flow.ckpt";

export async function trainFlow(config: FlowConfig, options: TrainFlowOptions): Promise<
  TrainFlowResult
> {
  const dir = config.out.replace(/\/+$/, "") || "/";
  await checkWritableDir(dir);
  const splits = options.data ?? await loadSplits(config.data.source, config.data);
  const train = options.data?.train ??
    subset(splits.train, config.data.size, config.data.balanced, config.seed);
  const [, h, w, c] = train.shape;
  if (h % 4 !== 0 || w % 4 !== 0) {
    throw keyError("data.source", `images are ${h}x${w}: the U-Net needs sides divisible by 4`);
  }
  const checkpointPath = `${dir}/${CHECKPOINT}`;
  const previous = options.resume ? await loadCheckpoint(checkpointPath) : null;
  const facts = flowFacts(config);
  if (previous && JSON.stringify(previous.header.meta.config) !== JSON.stringify(facts)) {
    throw fileError(
      checkpointPath,
      "was written with other options (--resume needs the same data and flow keys; only steps and every may change)",
    );
  }
  const learner = await FlowLearner.create(train.images, [h, w, c], {
    ...config,
    interpolant: { schedule: config.schedule, gamma: config.gamma },
  });
  try {
    await Deno.mkdir(dir, { recursive: true });
    if (previous) {
      learner.trainer.restore(previous);
      for (const [name, shadow] of learner.ema) shadow.set(previous.values.get(`ema:${name}`)!);
    }
    const rows = previous ? await readLog(`${dir}/log.csv`, learner.trainer.steps) : [];
    const evaluate = evaluator(learner, splits.test?.images ?? null, config);
    options.log(
      `[sia] train-flow: ${train.shape[0]} images [${h}, ${w}, ${c}] from ${train.source}, ` +
        `${config.preset} U-Net, target ${config.target}, ${config.steps} steps of ${config.batch}` +
        (previous ? `, resumed at step ${learner.trainer.steps}` : ""),
    );
    const progress = new Progress({
      label: "train-flow",
      total: config.steps - learner.trainer.steps,
      ...options.progress,
    });
    let stopped = false;
    options.stop?.then(() => (stopped = true));
    let lossSum = 0;
    let lossCount = 0;
    const save = () => saveFlowCheckpoint(learner, checkpointPath, facts);
    while (learner.trainer.steps < config.steps && !stopped) {
      lossSum += await learner.step();
      lossCount++;
      progress.tick(1);
      const step = learner.trainer.steps;
      if (step % config.evalEvery === 0 || step === config.steps) {
        const { heldoutLoss, delta } = await evaluate();
        rows.push({
          step,
          epoch: (step * config.batch) / train.shape[0],
          lr: learner.lr,
          trainLoss: lossSum / lossCount,
          heldoutLoss,
          delta,
        });
        lossSum = lossCount = 0;
        await writeLog(dir, rows, config.bins);
      }
      if (step % config.every === 0 || step === config.steps) await save();
    }
    if (stopped) {
      await save();
      progress.finish(`stopped at step ${learner.trainer.steps}; checkpoint kept`);
      return { steps: learner.trainer.steps, interrupted: true, dir };
    }
    progress.finish("trained");
    const { onnx, contract, error } = await learner.exportModel();
    await atomicWrite(`${dir}/flow.onnx`, onnx);
    await atomicWriteText(`${dir}/flow.json`, JSON.stringify(contract, null, 2) + "\n");
    const hash = await sha256Hex(onnx);
    await atomicWriteText(
      `${dir}/train.json`,
      JSON.stringify(
        {
          config: facts,
          steps: learner.trainer.steps,
          // Which images it read: the sha-256 of their ids (int32, little-endian, in order).
          data: {
            source: train.source,
            images: train.shape[0],
            shape: [h, w, c],
            idsSha256: await sha256Hex(
              new Uint8Array(train.ids.buffer, train.ids.byteOffset, train.ids.byteLength),
            ),
          },
          export: { tfjsRelativeError: error, sha256: hash },
          note:
            "float32 kernels differ across CPUs: the same seed gives the same bytes on the same kind of CPU",
        },
        null,
        2,
      ) + "\n",
    );
    options.log(
      `[sia] wrote ${dir}/flow.onnx (sha256 ${hash.slice(0, 16)}..., ` +
        `tfjs check ${error.toExponential(1)}) and flow.json`,
    );
    return { steps: learner.trainer.steps, interrupted: false, dir };
  } finally {
    await learner.release();
  }
}

/** What a resumed run must share with the run that wrote the checkpoint. */
function flowFacts(config: FlowConfig): Record<string, unknown> {
  const { steps: _steps, every: _every, out: _out, ...rest } = config;
  return rest;
}

async function saveFlowCheckpoint(learner: FlowLearner, path: string, facts: unknown) {
  const values = new Map<string, Float32Array>();
  const shapes = new Map<string, readonly number[]>();
  const graph = learner.trainer.graph;
  for (const p of graph.params) shapes.set(p.name, p.shape);
  for (const s of graph.state) shapes.set(s.name, s.shape);
  for (const name of learner.trainer.names()) values.set(name, learner.trainer.value(name));
  for (const [name, shadow] of learner.ema) {
    values.set(`ema:${name}`, shadow);
    shapes.set(`ema:${name}`, shapes.get(name)!);
  }
  await saveCheckpoint(
    path,
    {
      step: learner.trainer.steps,
      blocks: learner.blocks,
      input: learner.input,
      meta: { config: facts, kind: "flow" },
    },
    values,
    shapes,
  );
}

/**
 * Fixed evaluation pairs, drawn once: held-out loss on the test split's images (the regression
 * the network was trained on, for images it never saw), and delta(t) on training images, where
 * b* is exact, `evalPairs` per time bin (stratified t). b* is computed once.
 */
function evaluator(learner: FlowLearner, test: Float32Array | null, config: FlowConfig) {
  const d = learner.d;
  const per = config.evalPairs;
  const count = per * config.bins;
  const rng = new Rng(config.seed, "flow-eval");
  const times = Float32Array.from(
    { length: count },
    (_, i) => ((Math.floor(i / per) + rng.uniform()) / config.bins) * T_MAX,
  );
  const trainImages = learner.trainImages();
  const x1 = new Float32Array(count * d);
  for (let i = 0; i < count; i++) {
    const r = rng.int(trainImages.length / d);
    x1.set(trainImages.subarray(r * d, (r + 1) * d), i * d);
  }
  const deltaPairs = learner.pairs(x1, rng, times, false);
  const exact = learner.exactVelocity(deltaPairs.x, times);
  const heldout = test
    ? (() => {
      const images = toFlowRange(test);
      const x = new Float32Array(count * d);
      for (let i = 0; i < count; i++) {
        const r = rng.int(images.length / d);
        x.set(images.subarray(r * d, (r + 1) * d), i * d);
      }
      return learner.pairs(x, rng, times, learner.options.target !== "efm");
    })()
    : null;
  if (heldout && learner.options.target === "efm") {
    // Held-out images have no closed-form target of their own: their velocity target is b* of
    // the training set at their x_t.
    heldout.target.set(learner.exactVelocity(heldout.x, times));
  }
  return async () => {
    const velocity = await learner.velocityAt(deltaPairs.x, times);
    const delta = new Array(config.bins).fill(0);
    for (let i = 0; i < count; i++) {
      let e = 0;
      for (let j = 0; j < d; j++) e += (velocity[i * d + j] - exact[i * d + j]) ** 2;
      delta[Math.floor(i / per)] += e / d / per;
    }
    let heldoutLoss = NaN;
    if (heldout) {
      const out = await learner.predict(heldout.x, times);
      heldoutLoss = 0;
      for (let i = 0; i < out.length; i++) heldoutLoss += (out[i] - heldout.target[i]) ** 2;
      heldoutLoss /= out.length;
    }
    return { heldoutLoss, delta };
  };
}

const LOG_HEADER = (bins: number) =>
  ["step", "epoch", "lr", "train_loss", "heldout_loss"].concat(
    Array.from({ length: bins }, (_, k) => `delta_t${k}`),
  ).join(",");

async function writeLog(dir: string, rows: readonly LogRow[], bins: number) {
  const lines = rows.map((r) =>
    [r.step, r.epoch, r.lr, r.trainLoss, r.heldoutLoss, ...r.delta].map((v) => String(v)).join(",")
  );
  await atomicWriteText(`${dir}/log.csv`, [LOG_HEADER(bins), ...lines].join("\n") + "\n");
  await writeFigure(deltaFigure(rows, bins), `${dir}/delta`);
}

async function readLog(path: string, upTo: number): Promise<LogRow[]> {
  const text = await Deno.readTextFile(path).catch(() => "");
  return text.trim().split("\n").slice(1).filter((l) => l).map((line) => {
    const v = line.split(",").map(Number);
    return {
      step: v[0],
      epoch: v[1],
      lr: v[2],
      trainLoss: v[3],
      heldoutLoss: v[4],
      delta: v.slice(5),
    };
  }).filter((r) => r.step <= upTo);
}

const PALETTE = ["#c6dbef", "#9ecae1", "#6baed6", "#3182bd", "#08519c", "#08306b"];

/** delta(t) per bin (log10), one series per logged evaluation (at most six, spread out). */
function deltaFigure(rows: readonly LogRow[], bins: number) {
  const picked = rows.length <= PALETTE.length
    ? rows
    : PALETTE.map((_, k) => rows[Math.round((k * (rows.length - 1)) / (PALETTE.length - 1))]);
  const logs = picked.flatMap((r) => r.delta.map((v) => Math.log10(Math.max(v, 1e-12))));
  const lo = Math.floor(Math.min(...logs, 0) - 0.2);
  const hi = Math.ceil(Math.max(...logs, 0) + 0.2);
  return {
    title: "Flow estimation error",
    panels: [{
      title: "delta(t) = E|b_theta - b*|^2 / d",
      xlim: [0, 1] as const,
      ylim: [lo, hi] as const,
      xLabel: "t (0 = noise, 1 = data)",
      yLabel: "log10 delta",
      notes: picked.map((r) => `step ${r.step}: held-out loss ${r.heldoutLoss.toFixed(4)}`),
      series: picked.map((r, k) => ({
        name: `step ${r.step}`,
        xy: Float64Array.from(
          r.delta.flatMap((v, b) => [((b + 0.5) / bins) * T_MAX, Math.log10(Math.max(v, 1e-12))]),
        ),
        color: PALETTE[k % PALETTE.length],
        radius: 3,
      })),
    }],
  };
}
