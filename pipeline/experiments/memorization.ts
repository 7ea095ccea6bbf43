// The paper's observation about trained flows (Lin, Li and Yu, appendix A.2), measured: how much a
// velocity network trained on a small set memorizes as training goes on. For each training-set
// size and regression target (cfm: the conditional velocity x1 - x0 regression; efm: Bertrand et
// al.'s empirical flow matching), a cell trains one flow and, at each checkpoint step, exports it,
// generates with the onnx-flow stage (ODE) and measures the samples against the training set:
// the memorized fraction (nearest / second nearest < 1/3), the mean nearest-neighbour distance, and
// the convex-combination residual (nonnegative least squares on the k nearest training images),
// which separates copies (residual = distance = 0) from convex combinations plus noise (residual
// well below the distance). The closed-form ODE (which Theorem 1 says copies) is the ceiling and
// held-out real images the floor, per size.

import { imageSize } from "../../core/batch.ts";
import type { Dataset } from "../../core/batch.ts";
import { keyError } from "../../core/errors.ts";
import { atomicWrite, atomicWriteText, sha256Hex } from "../../core/files.ts";
import { kNearest } from "../../core/nearest.ts";
import { nnls } from "../../core/nnls.ts";
import { describeSection, resolveSection, suggestion } from "../../core/schema.ts";
import type { Resolved, Section } from "../../core/schema.ts";
import { subset, take } from "../../stages/load/dataset.ts";
import { FlowLearner } from "../../stages/learn/flow.ts";
import { closeness } from "../../stages/sink/summary.ts";
import { DATA_SECTION, generatorStage } from "../config.ts";
import { FLOW_SECTION } from "../train_flow.ts";
import { lineChart, writeDrawing } from "./charts.ts";
import type { Estimate } from "./charts.ts";
import { cellFileName, defineExperiment, product } from "./experiment.ts";
import type { CellKey, StoredCell } from "./experiment.ts";
import { commonFields, loadData, makePool, parseSeeds, TOP_KEYS } from "./shared.ts";
import { csvTable, fixed, markdownTable, writeTables } from "./tables.ts";

export const MEMORIZATION_SECTION = {
  sizes: { type: "string", default: "256,1024,4096", doc: "training-set sizes (comma list)" },
  arms: {
    type: "string",
    default: "cfm,efm",
    doc: "flow targets: cfm (velocity regression), efm (empirical flow matching)",
  },
  seeds: { type: "string", default: "0", doc: "seeds: a comma list (0,1,2) or a count (3x)" },
  checkpoints: {
    type: "string",
    default: "250,500,1000,2000",
    doc: "steps at which the flow is exported and measured (the last ends its training)",
  },
  samples: { type: "int", min: 2, default: 256, doc: "images generated per measurement" },
  sampleSteps: { type: "int", min: 1, default: 20, doc: "Euler steps of the flow's ODE" },
  neighbours: { type: "int", min: 1, default: 5, doc: "k of the convex-combination residual" },
} as const satisfies Section;

/** The flow options a memorization config may set (the rest follow from the cell). */
const FLOW_KEYS = ["preset", "batch", "lr", "warmup", "ema", "clip", "efmExtra"] as const;
const FLOW_OPTIONS = Object.fromEntries(FLOW_KEYS.map((k) => [k, FLOW_SECTION[k]])) as {
  [K in (typeof FLOW_KEYS)[number]]: (typeof FLOW_SECTION)[K];
};

export interface MemorizationConfig {
  readonly description: string;
  readonly data: Resolved<typeof DATA_SECTION>;
  readonly memorization: Resolved<typeof MEMORIZATION_SECTION>;
  readonly flow: Resolved<typeof FLOW_OPTIONS>;
  readonly out: { dir: string };
}

/** The samples' closeness to the training set at one point of training. */
export interface Measurement {
  readonly step: number;
  readonly epoch: number;
  readonly memorized: number;
  readonly nearest: number;
  readonly residual: number;
  /** sha-256 of the exported model measured (empty for the ceiling and floor). */
  readonly model: string;
}

export interface MemorizationCell {
  readonly points: readonly Measurement[];
}

interface Shared {
  readonly train: Dataset;
  readonly test: Dataset;
}

const list = (text: string, key: string) => {
  const values = text.split(",").map((s) => s.trim()).filter((s) => s);
  if (values.length === 0) throw keyError(key, "expected a comma list");
  return values;
};
const numbers = (text: string, key: string) =>
  list(text, key).map((s) => {
    const v = Number(s);
    if (!Number.isInteger(v) || v < 1) {
      throw keyError(key, `expected positive integers, got "${s}"`);
    }
    return v;
  });

export function resolveMemorizationConfig(raw: Record<string, unknown>): MemorizationConfig {
  for (const key of Object.keys(raw)) {
    const top = [...TOP_KEYS, "memorization", "flow"];
    if (!top.includes(key)) throw keyError(key, `unknown key${suggestion(key, top)}`);
  }
  const memorization = resolveSection(MEMORIZATION_SECTION, raw.memorization, "memorization.");
  numbers(memorization.sizes, "memorization.sizes");
  numbers(memorization.checkpoints, "memorization.checkpoints");
  parseSeeds(memorization.seeds, "memorization.seeds");
  for (const arm of list(memorization.arms, "memorization.arms")) {
    if (arm !== "cfm" && arm !== "efm") {
      throw keyError("memorization.arms", `unknown arm "${arm}"${suggestion(arm, ["cfm", "efm"])}`);
    }
  }
  const out = (raw.out ?? {}) as Record<string, unknown>;
  if (typeof out.dir !== "string" || !out.dir) throw keyError("out.dir", "no output directory");
  return {
    description: typeof raw.description === "string" ? raw.description : "",
    data: resolveSection(DATA_SECTION, raw.data, "data."),
    memorization,
    flow: resolveSection(FLOW_OPTIONS, raw.flow, "flow."),
    out: { dir: out.dir },
  };
}

/** Mean nearest distance, memorized fraction and mean NNLS residual of samples against train. */
export function measure(images: Float32Array, train: Dataset, k: number) {
  const d = imageSize(train.shape);
  const n = images.length / d;
  const { memorizedFraction, meanNearestDistance } = closeness(images, train);
  const kk = Math.min(k, train.shape[0]);
  const { index } = kNearest(images, train.images, d, kk);
  const rows = new Float64Array(kk * d);
  let residual = 0;
  for (let q = 0; q < n; q++) {
    for (let a = 0; a < kk; a++) {
      const i = index[q * kk + a];
      for (let j = 0; j < d; j++) rows[a * d + j] = train.images[i * d + j];
    }
    residual += nnls(rows, kk, images.subarray(q * d, (q + 1) * d)).residual;
  }
  return { memorized: memorizedFraction, nearest: meanNearestDistance, residual: residual / n };
}

function grid(config: MemorizationConfig): CellKey[] {
  const m = config.memorization;
  return product({
    size: numbers(m.sizes, "memorization.sizes"),
    arm: [...list(m.arms, "memorization.arms"), "closed-form", "held-out"],
    seed: parseSeeds(m.seeds, "memorization.seeds"),
  });
}

const checkpointsOf = (config: MemorizationConfig) =>
  numbers(config.memorization.checkpoints, "memorization.checkpoints").sort((a, b) => a - b);

export const memorization = defineExperiment<MemorizationConfig, Shared, MemorizationCell>({
  name: "memorization",
  summary: "how much a trained flow memorizes as it trains, by training-set size (appendix A.2)",
  unit: "[memorization] steps",
  describe: () => [
    ...describeSection(MEMORIZATION_SECTION, "memorization."),
    ...describeSection(FLOW_OPTIONS, "flow."),
  ],
  resolve: resolveMemorizationConfig,
  fields() {
    const fields = commonFields();
    for (const [k, f] of Object.entries(MEMORIZATION_SECTION)) fields[`memorization.${k}`] = f;
    for (const [k, f] of Object.entries(FLOW_OPTIONS)) fields[`flow.${k}`] = f;
    return fields;
  },
  outDir: (config) => config.out.dir,
  grid,
  identity(config, key) {
    const { sizes: _, arms: __, seeds: ___, ...m } = config.memorization;
    const arm = String(key.arm);
    const flow = arm === "cfm" || arm === "efm";
    return {
      data: config.data,
      key,
      samples: m.samples,
      neighbours: m.neighbours,
      ...(flow
        ? { flow: config.flow, checkpoints: m.checkpoints, sampleSteps: m.sampleSteps }
        : {}),
    };
  },
  cost: (config, key) => key.arm === "cfm" || key.arm === "efm" ? checkpointsOf(config).at(-1)! : 1,
  prepare: (config, log) => loadData(config.data, log, "the memorization study"),
  async run(config, key, context) {
    const m = config.memorization;
    const [size, arm, seed] = [Number(key.size), String(key.arm), Number(key.seed)];
    const train = subset(context.shared.train, size, config.data.balanced, seed);
    const k = m.neighbours;
    if (arm === "held-out") {
      const count = Math.min(m.samples, context.shared.test.shape[0]);
      const held = take(context.shared.test, Array.from({ length: count }, (_, i) => i));
      return { points: [{ step: 0, epoch: 0, model: "", ...measure(held.images, train, k) }] };
    }
    if (arm === "closed-form") {
      const params = resolveSection(generatorStage("closed-form").params, {}, "closed-form.");
      const pool = await makePool("closed-form", params, train, m.samples, seed, "closed-form");
      return { points: [{ step: 0, epoch: 0, model: "", ...measure(pool.images, train, k) }] };
    }
    const [, h, w, c] = train.shape;
    const checkpoints = checkpointsOf(config);
    const learner = await FlowLearner.create(train.images, [h, w, c], {
      ...config.flow,
      steps: checkpoints.at(-1)!,
      target: arm === "efm" ? "efm" : "velocity",
      interpolant: { schedule: "linear", gamma: "none" },
      seed,
    });
    let stopped = false;
    context.stop.then(() => (stopped = true));
    const models = `${config.out.dir}/models`;
    await Deno.mkdir(models, { recursive: true });
    const points: Measurement[] = [];
    try {
      for (const at of checkpoints) {
        while (learner.trainer.steps < at) {
          if (stopped) throw new Error("stopped");
          context.tick(1, { loss: await learner.step() });
        }
        const { onnx, contract } = await learner.exportModel();
        const base = `${models}/${cellFileName(key)}__step${at}`;
        await atomicWrite(`${base}.onnx`, onnx);
        await atomicWriteText(`${base}.json`, JSON.stringify(contract, null, 2) + "\n");
        const params = resolveSection(
          generatorStage("onnx-flow").params,
          { model: `${base}.onnx`, steps: m.sampleSteps },
          "onnx-flow.",
        );
        const pool = await makePool("onnx-flow", params, train, m.samples, seed, "onnx-flow");
        const point = {
          step: at,
          epoch: (at * config.flow.batch) / size,
          model: await sha256Hex(onnx),
          ...measure(pool.images, train, k),
        };
        context.log(
          `[sia]   ${arm} n=${size} step ${at}: memorized ${
            (100 * point.memorized).toFixed(1)
          } %,` +
            ` nearest ${point.nearest.toFixed(3)}, residual ${point.residual.toFixed(3)}`,
        );
        points.push(point);
      }
      return { points };
    } finally {
      await learner.release();
    }
  },
  describeResult: (r) => {
    const last = r.points.at(-1)!;
    return `memorized ${(100 * last.memorized).toFixed(1)} %, nearest ${last.nearest.toFixed(3)}`;
  },
  async report(config, cells, _shared, dir) {
    const rows = cells.flatMap((cell) => cell.result.points.map((p) => ({ key: cell.key, ...p })));
    const header = [
      "size",
      "arm",
      "seed",
      "step",
      "epoch",
      "memorized %",
      "mean NN distance",
      "NNLS residual (k nearest)",
      "model sha-256",
    ];
    const table = rows.map((r) => [
      Number(r.key.size),
      String(r.key.arm),
      Number(r.key.seed),
      r.step,
      fixed(r.epoch, 1),
      fixed(100 * r.memorized, 1),
      fixed(r.nearest, 3),
      fixed(r.residual, 3),
      r.model ? r.model.slice(0, 16) : "-",
    ]);
    const note =
      `${
        config.description || "Memorization of a trained flow"
      }: ${config.data.source}, ${config.flow.preset} U-Net, batch ${config.flow.batch}, lr ${config.flow.lr}, EMA ${config.flow.ema}; ` +
      `${config.memorization.samples} ODE samples (${config.memorization.sampleSteps} Euler steps) per point; ` +
      `memorized = nearest / second nearest training image < 1/3; residual = nonnegative least squares of ` +
      `each sample on its ${config.memorization.neighbours} nearest training images. closed-form = the exact ` +
      `ODE (ceiling), held-out = real test images (floor). Model hashes: float32 kernels differ across CPUs, ` +
      `so the same seed gives the same bytes on the same kind of CPU.`;
    const md = [
      "# A trained flow's memorization as it trains",
      "",
      note,
      "",
      markdownTable(header, table),
      "",
    ].join("\n");
    await writeTables(dir, "memorization", {
      md,
      csv: csvTable(header, table),
      json: { note, rows },
    });
    await writeDrawing(memorizationChart(config, cells, "step"), `${dir}/memorization`);
    await writeDrawing(memorizationChart(config, cells, "epoch"), `${dir}/memorization-epochs`);
    return md;
  },
});

/** Memorized % against steps or epochs, a panel per size; ceiling and floor as flat lines. */
function memorizationChart(
  config: MemorizationConfig,
  cells: readonly StoredCell<MemorizationCell>[],
  axis: "step" | "epoch",
) {
  const sizes = numbers(config.memorization.sizes, "memorization.sizes");
  const arms = list(config.memorization.arms, "memorization.arms");
  const checkpoints = checkpointsOf(config);
  const mean = (values: number[]): Estimate | undefined => {
    if (values.length === 0) return undefined;
    const m = values.reduce((s, v) => s + v, 0) / values.length;
    return { mean: m, lo: Math.min(...values), hi: Math.max(...values) };
  };
  const at = (size: number, arm: string, step: number) =>
    cells.filter((c) => c.key.size === size && c.key.arm === arm).flatMap((c) =>
      c.result.points.filter((p) => p.step === step || step === 0).map((p) => 100 * p.memorized)
    );
  return lineChart({
    title: "Memorized share of a trained flow's samples as it trains (min-max over seeds)",
    xLabel: axis === "step" ? "training steps" : "epochs",
    yLabel: "memorized %",
    panels: sizes.map((size) => ({
      title: `${size} training images`,
      xs: checkpoints.map((s) => axis === "step" ? s : (s * config.flow.batch) / size),
      series: [
        ...arms.map((arm) => ({
          name: arm,
          points: checkpoints.map((s) => mean(at(size, arm, s))),
        })),
        ...["closed-form", "held-out"].map((arm) => ({
          name: arm === "closed-form" ? "closed form (ceiling)" : "held-out real (floor)",
          points: checkpoints.map(() => mean(at(size, arm, 0))),
        })),
      ],
    })),
  });
}
