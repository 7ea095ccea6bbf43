// Table 3 on the experiment layer: for each seed, learner and arm, train the encoder for a fixed
// step budget on views of the arm's data and probe it on the real test split.
//   baseline              strong views of real images only
//   generated:<name>      weak views of real images (replicated dup times) + the pool of any
//                         registry generator configured under generators.<name>
//   generated:trained-flow  the same with a pool from a train-flow velocity network trained on the
//                         same real training set (the paper's generator), when "flow" is configured
//   noised                weak views of real images (replicated dup times) + a noise-perturbed pool
// plus a random-init cell per seed (the floor every arm must beat). A cell's key is
// { learner, arm, seed }; its pool, batches, views and initial weights all derive from the seed,
// so every arm's pool is fresh per seed and pool-to-pool variation enters each arm's interval.
// The trained flow is trained once per config and reused by every seed: like the paper's one
// generator per data set, and because training it per seed would cost as much as the table itself.
// It is stored content-addressed under <out>/flows/<hash of its data and options>/, so a rerun, a
// resumed run or another process with the same config reuses it. Cells record the sha-256 of their
// pool and model; the report compares arms by paired differences over seeds (core/stats.ts).

import { filter, lastValueFrom, NEVER, of, takeUntil, tap } from "rxjs";
import { augmentViews } from "../../stages/augment/contrastive.ts";
import { PRESET_NAMES, PRESETS } from "../../stages/augment/recipes.ts";
import { initParams } from "../../stages/learn/blocks/init.ts";
import { paramSpecs, resnet18Cifar, smallCnn } from "../../stages/learn/blocks/model.ts";
import type { Block } from "../../stages/learn/blocks/model.ts";
import { cosineWithWarmup } from "../../stages/learn/graph/schedules.ts";
import type { Learner, LearnerOptions } from "../../stages/learn/learner.ts";
import { moco } from "../../stages/learn/moco.ts";
import { simclr } from "../../stages/learn/simclr.ts";
import { simsiam } from "../../stages/learn/simsiam.ts";
import { learnStage } from "../../stages/learn/stage.ts";
import { swav } from "../../stages/learn/swav.ts";
import { subset } from "../../stages/load/dataset.ts";
import { probeEncoder, probeSink } from "../../stages/sink/probe.ts";
import type { ProbeEvent, ProbeSinkOptions } from "../../stages/sink/probe.ts";
import { npyShardSink } from "../../stages/sink/shards.ts";
import { closeness } from "../../stages/sink/summary.ts";
import type { Batch, Dataset } from "../../core/batch.ts";
import { imageSize } from "../../core/batch.ts";
import { keyError } from "../../core/errors.ts";
import { sha256Hex } from "../../core/files.ts";
import { describeSection, resolveSection, suggestion } from "../../core/schema.ts";
import type { Resolved, Section } from "../../core/schema.ts";
import type { Paired } from "../../core/stats.ts";
import { DATA_SECTION, generatorStage } from "../config.ts";
import { Credits, paced } from "../flow.ts";
import { difference, findGroup, formatDifference, groupCells } from "./aggregate.ts";
import type { Group } from "./aggregate.ts";
import { barChart, writeDrawing } from "./charts.ts";
import { cellFileName, defineExperiment, product } from "./experiment.ts";
import type { CellContext, CellKey, Codec, StoredCell } from "./experiment.ts";
import { drawBatch, realShare } from "./mix.ts";
import {
  commonFields,
  loadData,
  makePool,
  parseSeeds,
  POOL_CODEC,
  resolveGenerators,
  TOP_KEYS,
} from "./shared.ts";
import { csvTable, markdownTable, writeTables } from "./tables.ts";
import {
  FLOW_TRAIN_KEYS,
  flowSampleParams,
  flowSpecFields,
  joinParts,
  resolveFlowSpec,
  splitParts,
  trainedFlow,
} from "./trained_flow.ts";
import type { FlowSpec } from "./trained_flow.ts";

export const LEARNERS = ["simclr", "moco", "simsiam", "swav"] as const;

export const TABLE3_SECTION = {
  learners: {
    type: "string",
    default: LEARNERS.join(","),
    doc: `comma list of ${LEARNERS.join(", ")}`,
  },
  seeds: { type: "string", default: "0", doc: "seeds: a comma list (0,1,2) or a count (3x)" },
  encoder: { type: "enum", values: ["smallcnn", "resnet18"], default: "smallcnn", doc: "encoder" },
  dim: { type: "int", min: 2, default: 64, doc: "projection width" },
  steps: {
    type: "int",
    min: 1,
    default: 200,
    doc: "optimisation steps per cell (the same compute for every arm)",
  },
  batch: { type: "int", min: 2, default: 128, doc: "images per step (2 views each)" },
  lr: {
    type: "number",
    above: 0,
    default: 0.05,
    doc: "peak learning rate (SGD momentum 0.9, cosine with warm-up)",
  },
  warmup: { type: "int", min: 0, default: 10, doc: "warm-up steps" },
  weightDecay: { type: "number", min: 0, default: 1e-5, doc: "SGD weight decay" },
  pool: { type: "int", min: 1, default: 5000, doc: "images in each generated or noised pool" },
  dup: {
    type: "int",
    min: 1,
    default: 10,
    doc: "real replication factor in the mixed arms (Wang et al.)",
  },
  strong: { type: "enum", values: PRESET_NAMES, default: "strong", doc: "the baseline's views" },
  weak: { type: "enum", values: PRESET_NAMES, default: "weak", doc: "the mixed arms' views" },
  probeTrain: { type: "int", min: 10, default: 5000, doc: "real training images the probes fit" },
  probeTest: { type: "int", min: 10, default: 2000, doc: "real test images the probes score" },
  mocoQueue: { type: "int", min: 1, default: 1024, doc: "MoCo negatives" },
  swavPrototypes: { type: "int", min: 2, default: 30, doc: "SwAV prototypes (few at small batch)" },
  nnSample: {
    type: "int",
    min: 0,
    default: 500,
    doc: "pool images the memorization summary measures against the training set (0 = none)",
  },
  shards: {
    type: "boolean",
    default: false,
    doc: "also write every pool as .npy shards under <out>/pools/<arm>__seed<k>/",
  },
} as const satisfies Section;

export const TRAINED_FLOW_ARM = "generated:trained-flow";

export interface Table3Config {
  readonly seed: number;
  readonly description: string;
  readonly data: Resolved<typeof DATA_SECTION>;
  readonly table3: Resolved<typeof TABLE3_SECTION>;
  /** Generator name -> resolved params, one "generated:<name>" arm each. */
  readonly generators: Record<string, Resolved<Section>>;
  /** The noised arm's noise parameters. */
  readonly noise: Resolved<Section>;
  /** The trained-flow arm: train-flow options and onnx-flow sampling options; null for none. */
  readonly flow: FlowSpec | null;
  readonly out: { dir: string };
}

/** A mixed arm's pool: its content hash and how close it sits to the training set. */
export interface PoolFacts {
  /** sha-256 of the pool's float32 pixels. */
  readonly sha256: string;
  readonly images: number;
  /** sha-256 of the generator's model file ("" for a generator without one). */
  readonly model: string;
  /** Memorized share (nearest / second nearest < 1/3) and mean nearest distance (NaN: none). */
  readonly memorized: number;
  readonly nearest: number;
}

export interface Table3Cell {
  /** Probe accuracies on [0, 1]: logistic regression (the main column), ridge, kNN. */
  readonly logistic: number;
  readonly ridge: number;
  readonly knn: number;
  readonly testImages: number;
  readonly steps: number;
  readonly finalLoss: number;
  /** The mixed arms' pool; absent for the baseline and the floor. */
  readonly pool?: PoolFacts;
}

interface Shared {
  readonly train: Dataset;
  readonly test: Dataset;
  readonly probes: ProbeSinkOptions;
}

/** The probes' columns: key in a cell, header. The first is the main column. */
const METRICS = [
  ["logistic", "linear probe % (logistic)"],
  ["ridge", "ridge %"],
  ["knn", "kNN %"],
] as const;
type Metric = (typeof METRICS)[number][0];

/** The main paper's Table 3 (CIFAR-10, linear accuracy %), for reference beside ours. */
export const PAPER: Record<string, Record<string, number>> = {
  swav: { baseline: 88.94, generated: 90.11, noised: 90.09 },
  simsiam: { baseline: 88.82, generated: 90.8, noised: 90.68 },
  simclr: { baseline: 90.14, generated: 91.71, noised: 91.41 },
  moco: { baseline: 91.72, generated: 92.95, noised: 92.84 },
};

export function resolveTable3Config(raw: Record<string, unknown>): Table3Config {
  for (const key of Object.keys(raw)) {
    const top = [...TOP_KEYS, "table3", "generators", "noise", "flow"];
    if (!top.includes(key)) throw keyError(key, `unknown key${suggestion(key, top)}`);
  }
  const table3 = resolveSection(TABLE3_SECTION, raw.table3, "table3.");
  for (const name of table3.learners.split(",")) {
    if (!(LEARNERS as readonly string[]).includes(name)) {
      throw keyError("table3.learners", `unknown learner "${name}"${suggestion(name, LEARNERS)}`);
    }
  }
  parseSeeds(table3.seeds, "table3.seeds");
  const generators = Object.fromEntries(
    Object.entries(
      resolveGenerators(raw.generators ?? { "closed-form": { sampler: "sde", steps: 50 } }, false),
    ).map(([name, g]) => [name, g.params]),
  );
  const out = (raw.out ?? {}) as Record<string, unknown>;
  if (typeof out.dir !== "string" || !out.dir) {
    throw keyError("out.dir", "no output directory given");
  }
  return {
    seed: typeof raw.seed === "number" ? raw.seed : 0,
    description: typeof raw.description === "string" ? raw.description : "",
    data: resolveSection(DATA_SECTION, raw.data, "data."),
    table3,
    generators,
    noise: resolveSection(generatorStage("noise").params, raw.noise, "noise."),
    flow: raw.flow === undefined || raw.flow === null ? null : resolveFlowSpec(raw.flow, "flow."),
    out: { dir: out.dir },
  };
}

/** A learner by name with the recipes' settings (MoCo tau 0.2, m 0.99; SwAV T 0.1, eps 0.05). */
export function learnerFor(
  name: string,
  options: LearnerOptions,
  t: Pick<Table3Config["table3"], "mocoQueue" | "swavPrototypes">,
): Promise<Learner> {
  switch (name) {
    case "simclr":
      return simclr(options);
    case "moco":
      return moco(options, { tau: 0.2, queue: t.mocoQueue, momentum: 0.99 });
    case "simsiam":
      return simsiam(options);
    default:
      return swav(options, { prototypes: t.swavPrototypes, temperature: 0.1, eps: 0.05 });
  }
}

function encoderOf(config: Table3Config): Block[] {
  return config.table3.encoder === "smallcnn" ? smallCnn() : resnet18Cifar();
}

function arms(config: Table3Config): string[] {
  return [
    "baseline",
    ...Object.keys(config.generators).map((g) => `generated:${g}`),
    ...(config.flow ? [TRAINED_FLOW_ARM] : []),
    "noised",
  ];
}

/** What the trained flow depends on: the table's data and seed and its own options. */
function flowIdentity(config: Table3Config) {
  return { data: config.data, seed: config.seed, train: config.flow?.train };
}

/** A mixed arm's pool with its facts, as one artifact on a queue (pipeline/queue/). */
const ARM_POOL_CODEC: Codec<{ pool: Batch; facts: PoolFacts }> = {
  encode: ({ pool, facts }) =>
    joinParts([new TextEncoder().encode(JSON.stringify(facts)), POOL_CODEC.encode(pool)]),
  decode(bytes) {
    const [facts, pool] = splitParts(bytes);
    // JSON has no NaN: a fact that was NaN (nothing sampled) comes back as null; restore it.
    const parsed = JSON.parse(new TextDecoder().decode(facts), (_k, v) => v === null ? NaN : v);
    return { pool: POOL_CODEC.decode(pool), facts: parsed };
  },
};

/** The table's trained flow, trained once per config and reused by every seed. */
function tableFlow(config: Table3Config, context: CellContext<Shared>) {
  return trainedFlow({
    spec: config.flow!,
    seed: config.seed,
    data: { train: context.shared.train, test: context.shared.test },
    dataConfig: config.data,
    identity: flowIdentity(config),
    outDir: config.out.dir,
    what: "the table's flow (once per config, reused by every seed)",
  }, context);
}

/** The pool of a mixed arm and seed, with its facts; its shards too when asked. */
async function armPool(
  config: Table3Config,
  arm: string,
  seed: number,
  context: CellContext<Shared>,
): Promise<{ pool: Batch; facts: PoolFacts }> {
  const t = config.table3;
  const { train } = context.shared;
  context.log(`[sia] making the ${arm} pool (${t.pool} images, seed ${seed})`);
  let stage: string;
  let params: Resolved<Section>;
  if (arm === "noised") [stage, params] = ["noise", config.noise];
  else if (arm === TRAINED_FLOW_ARM) {
    const { model } = await tableFlow(config, context);
    stage = "onnx-flow";
    params = flowSampleParams(config.flow!, model, "flow.sample.");
  } else {
    stage = arm.slice("generated:".length);
    params = config.generators[stage];
  }
  const pool = await makePool(stage, params, train, t.pool, seed, `generators.${stage}`);
  const modelPath = typeof params.model === "string" ? params.model : "";
  const sample = pool.images.subarray(0, Math.min(t.nnSample, t.pool) * imageSize(train.shape));
  const near = t.nnSample > 0
    ? closeness(sample, train)
    : { memorizedFraction: NaN, meanNearestDistance: NaN };
  const facts: PoolFacts = {
    sha256: await sha256Hex(
      new Uint8Array(pool.images.buffer, pool.images.byteOffset, pool.images.byteLength),
    ),
    images: pool.shape[0],
    model: modelPath ? await sha256Hex(await Deno.readFile(modelPath)) : "",
    memorized: near.memorizedFraction,
    nearest: near.meanNearestDistance,
  };
  if (t.shards) {
    const dir = `${config.out.dir}/pools/${cellFileName({ arm, seed })}`;
    await Deno.mkdir(dir, { recursive: true });
    const sink = npyShardSink(dir, t.pool);
    await lastValueFrom(of(pool).pipe(sink.operator), { defaultValue: null });
    await sink.finish(false);
  }
  const closenessNote = t.nnSample > 0
    ? `, memorized ${(100 * facts.memorized).toFixed(1)} %, nearest ${facts.nearest.toFixed(3)}`
    : "";
  context.log(
    `[sia]   ${arm} pool, seed ${seed}: sha-256 ${facts.sha256.slice(0, 16)}${closenessNote}`,
  );
  return { pool, facts };
}

/** The floor and every learner's arms, seed by seed (a seed's pools are then made once). */
function grid(config: Table3Config): CellKey[] {
  return parseSeeds(config.table3.seeds, "table3.seeds").flatMap((seed) => [
    { learner: "random-init", arm: "floor", seed },
    ...product({ learner: config.table3.learners.split(","), arm: arms(config), seed: [seed] }),
  ]);
}

async function runCell(
  config: Table3Config,
  key: CellKey,
  context: CellContext<Shared>,
): Promise<Table3Cell> {
  const t = config.table3;
  const { train, probes } = context.shared;
  const [learner, arm, seed] = [String(key.learner), String(key.arm), Number(key.seed)];
  const input = probes.input;
  if (learner === "random-init") {
    const [h, w, c] = input;
    const params = initParams(paramSpecs(probes.encoder, [c, h, w]), seed);
    const { logistic, linear, knn, testImages } = await probeEncoder(params, probes);
    return { logistic, ridge: linear, knn, testImages, steps: 0, finalLoss: NaN };
  }
  const made = arm === "baseline"
    ? null
    : await context.memo(`${arm}|${seed}`, () =>
      armPool(config, arm, seed, context), ARM_POOL_CODEC);
  const extra = made?.pool ?? null;
  const mix = { real: train, extra, dup: arm === "baseline" ? 1 : t.dup };
  const augment = augmentViews(PRESETS[arm === "baseline" ? t.strong : t.weak], seed);
  const model = await learnerFor(learner, {
    encoder: probes.encoder,
    input,
    batch: t.batch,
    optimizer: { kind: "sgd", momentum: 0.9, weightDecay: t.weightDecay },
    seed,
    dim: t.dim,
  }, t);
  // The cell as a pipeline: paced batches -> views -> learner -> probe sink; a batch leaves the
  // source only when an earlier one has finished its step (window 2).
  const credits = new Credits(2);
  function* batches() {
    for (let step = 0; step < t.steps; step++) yield drawBatch(mix, t.batch, seed, step);
  }
  const lr = (step: number) =>
    cosineWithWarmup(step, { base: t.lr, warmup: t.warmup, total: t.steps });
  let loss = NaN;
  try {
    const graph = paced(batches(), credits).pipe(
      augment,
      learnStage(model, { lr }),
      probeSink(probes),
      tap((event) => {
        if (event.kind !== "step") return;
        credits.give();
        // The view's curve: the loss, the collapse indicators and the learning rate.
        const { featureStd, codeEntropy } = event;
        context.tick(1, { loss: event.loss, featureStd, codeEntropy, lr: event.lr });
        loss = event.loss;
        if (event.step % 50 === 1 || event.step === t.steps) {
          context.log(
            `[sia]   ${learner} / ${arm} step ${event.step}/${t.steps}: loss ${
              loss.toFixed(4)
            }, feature std ${event.featureStd.toFixed(4)}${
              event.codeEntropy !== undefined
                ? `, code entropy ${event.codeEntropy.toFixed(3)}`
                : ""
            }`,
          );
        }
      }),
      filter((event): event is ProbeEvent => event.kind === "probe"),
      takeUntil(context.stop ?? NEVER),
    );
    const probe = await lastValueFrom(graph, { defaultValue: null });
    if (!probe) throw new Error("stopped");
    const { logistic, linear, knn, testImages } = probe;
    return {
      logistic,
      ridge: linear,
      knn,
      testImages,
      steps: t.steps,
      finalLoss: loss,
      ...(made ? { pool: made.facts } : {}),
    };
  } finally {
    await model.release();
  }
}

interface Estimate {
  readonly mean: number;
  readonly sd: number;
  readonly lo: number;
  readonly hi: number;
  readonly n: number;
  readonly values: readonly number[];
}

const estimate = (g: Group): Estimate => ({
  mean: g.mean,
  sd: g.sd,
  lo: g.lo,
  hi: g.hi,
  n: g.n,
  values: [...g.values],
});

/** "80.38 [79.68, 81.08] (n=3)", or "80.70 (n=1)" where one seed gives no interval. */
function formatEstimate(e: Estimate): string {
  return Number.isNaN(e.lo)
    ? `${e.mean.toFixed(2)} (n=${e.n})`
    : `${e.mean.toFixed(2)} [${e.lo.toFixed(2)}, ${e.hi.toFixed(2)}] (n=${e.n})`;
}

/** What a paired interval says, derived from it alone: above, below, or not resolved. */
export function readDifference(a: string, b: string, d: Paired): string {
  if (d.n < 2) return `${a} vs ${b}: one seed, no interval`;
  if (d.lo > 0) return `${a} above ${b} (interval excludes 0)`;
  if (d.hi < 0) return `${a} below ${b} (interval excludes 0)`;
  return `${a} vs ${b}: not resolved (interval includes 0)`;
}

/** The comparisons of a learner: baseline - floor, each generated - noised, each mixed - baseline. */
function comparisons(config: Table3Config): [string, string][] {
  const mixed = arms(config).filter((a) => a !== "baseline");
  return [
    ["baseline", "floor"],
    ...mixed.filter((a) => a.startsWith("generated:")).map((a): [string, string] => [a, "noised"]),
    ...mixed.map((a): [string, string] => [a, "baseline"]),
  ];
}

export const table3 = defineExperiment<Table3Config, Shared, Table3Cell>({
  name: "table3",
  summary: "contrastive learners on real, generated and noised data, probed (the paper's Table 3)",
  unit: "[table3] steps",
  describe: () => [
    ...describeSection(TABLE3_SECTION, "table3."),
    `  generators.<name>.*  one "generated:<name>" arm per generator, its params as under generate.params`,
    "  noise.*              the noised arm's noise params (r, s, k, clip)",
    `  flow.train.*         a "${TRAINED_FLOW_ARM}" arm: train-flow options (${
      FLOW_TRAIN_KEYS.join(", ")
    })`,
    "  flow.sample.*        its pool's onnx-flow sampling options (sampler, steps, ...)",
  ],
  resolve: resolveTable3Config,
  fields(raw) {
    const fields = commonFields();
    const prefixed = (prefix: string, section: Section) => {
      for (const [k, f] of Object.entries(section)) fields[`${prefix}${k}`] = f;
    };
    prefixed("table3.", TABLE3_SECTION);
    prefixed("noise.", generatorStage("noise").params);
    Object.assign(fields, flowSpecFields("flow."));
    const generators = raw.generators && typeof raw.generators === "object"
      ? Object.keys(raw.generators)
      : ["closed-form"];
    for (const name of generators) prefixed(`generators.${name}.`, generatorStage(name).params);
    return fields;
  },
  outDir: (config) => config.out.dir,
  grid,
  identity(config, key) {
    // Writing shards changes no result; everything else of the section may.
    const { learners: _, seeds: __, shards: ___, ...table3 } = config.table3;
    const arm = String(key.arm);
    return {
      seed: config.seed,
      data: config.data,
      table3,
      arm: arm === "noised"
        ? config.noise
        : arm === TRAINED_FLOW_ARM
        ? { flow: flowIdentity(config), sample: config.flow?.sample }
        : arm.startsWith("generated:")
        ? config.generators[arm.slice("generated:".length)]
        : null,
    };
  },
  cost: (config, key) => (key.learner === "random-init" ? 0 : config.table3.steps),
  async prepare(config, log) {
    const t = config.table3;
    const splits = await loadData(config.data, log, "Table 3");
    const train = subset(splits.train, config.data.size, config.data.balanced, config.seed);
    const probeTrain = subset(train, Math.min(t.probeTrain, train.shape[0]), false, config.seed);
    const probeTest = subset(
      splits.test,
      Math.min(t.probeTest, splits.test.shape[0]),
      false,
      config.seed,
    );
    const input = train.shape.slice(1) as unknown as [number, number, number];
    log(
      `[sia] Table 3: ${
        train.shape[0]
      } training images [${input}] from ${train.source}; probes on ${probeTrain.shape[0]} / ${
        probeTest.shape[0]
      } real images; ${t.steps} steps of ${t.batch} images per cell`,
    );
    return {
      train,
      test: splits.test,
      probes: { encoder: encoderOf(config), input, train: probeTrain, test: probeTest },
    };
  },
  run: runCell,
  metrics: {
    logistic: { label: "logistic probe %", scale: 100 },
    ridge: { label: "ridge probe %", scale: 100 },
    knn: { label: "kNN %", scale: 100 },
  },
  describeResult: (r) =>
    `logistic ${(100 * r.logistic).toFixed(2)} %, ridge ${(100 * r.ridge).toFixed(2)} %, kNN ${
      (100 * r.knn).toFixed(2)
    } % (${r.testImages} test images)`,
  report: table3Report,
});

async function table3Report(
  config: Table3Config,
  cells: readonly StoredCell<Table3Cell>[],
  { train, test }: Shared,
  dir: string,
): Promise<string> {
  const t = config.table3;
  const learners = ["random-init", ...t.learners.split(",")];
  const armOrder = ["floor", ...arms(config)];
  const poolShare = 1 - realShare(train.shape[0], t.pool, t.dup);
  const share = (arm: string) => (arm === "floor" || arm === "baseline" ? 0 : poolShare);
  const groups = Object.fromEntries(
    METRICS.map(([m]) => [m, groupCells(cells, (r: Table3Cell) => 100 * r[m])]),
  ) as Record<Metric, Group[]>;
  const group = (m: Metric, learner: string, arm: string) =>
    findGroup(groups[m], arm === "floor" ? { learner: "random-init", arm } : { learner, arm });
  const rows = learners.flatMap((learner) =>
    armOrder.flatMap((arm) => {
      if ((learner === "random-init") !== (arm === "floor") || !group("logistic", learner, arm)) {
        return [];
      }
      const metrics = Object.fromEntries(
        METRICS.map(([m]) => [m, estimate(group(m, learner, arm)!)]),
      ) as Record<Metric, Estimate>;
      return [{ learner, arm, poolShare: share(arm), ...metrics }];
    })
  );
  const differences = t.learners.split(",").flatMap((learner) =>
    comparisons(config).flatMap(([a, b]) => {
      const per = METRICS.map(([m]) => {
        const [ga, gb] = [group(m, learner, a), group(m, learner, b)];
        return ga && gb ? difference(ga, gb) : null;
      });
      if (per.some((d) => d === null)) return [];
      const [logistic, ridge, knn] = per as Paired[];
      return [{
        learner,
        comparison: `${a} - ${b}`,
        logistic,
        ridge,
        knn,
        reading: readDifference(a, b, logistic),
      }];
    })
  );
  const pools = cells.flatMap((c) =>
    c.result.pool && c.key.learner === t.learners.split(",")[0]
      ? [{ arm: String(c.key.arm), seed: Number(c.key.seed), ...c.result.pool }]
      : []
  );
  const heldOutCount = Math.min(t.nnSample, test.shape[0]);
  const heldOut = heldOutCount > 0
    ? closeness(test.images.subarray(0, heldOutCount * imageSize(test.shape)), train)
    : null;
  const models = [...new Set(pools.filter((p) => p.model).map((p) => `${p.arm} ${p.model}`))];
  const note =
    `${config.description || "Table 3"}: ${train.source}, ${
      train.shape[0]
    } training images, ${t.encoder}, ${t.steps} steps x ${t.batch} images per cell, seeds ${t.seeds}; ` +
    `probes on ${t.probeTrain} / ${t.probeTest} real train / test images (main column: multinomial ` +
    `logistic regression on standardised frozen features, L-BFGS to convergence, L2 from a seeded ` +
    `hold-out; ridge: closed form; kNN: k 200, T 0.1). The mixed arms replicate the real images ` +
    `${t.dup} times beside a fresh pool of ${t.pool} per seed, so ${
      (100 * poolShare).toFixed(1)
    } % of their draws come from the pool (Wang et al.: about 67 %). ` +
    `Intervals are 95 % Student-t over seeds; differences are paired by seed, with the sign ` +
    `counts (a > b, a < b). Pools and models are named by sha-256 (table below${
      models.length
        ? `; models: ${models.map((m) => m.slice(0, m.indexOf(" ") + 17)).join(", ")}`
        : ""
    }): float32 kernels differ across CPUs, so a generator's pool reproduces byte for byte on the ` +
    `same kind of CPU, and the hash says whether two runs trained on the same pool. The paper's ` +
    `column is CIFAR-10 with ResNet-18 at full scale, for reference only.`;
  const paper = (learner: string, arm: string) => PAPER[learner]?.[arm.split(":")[0]];
  // A stored NaN reads back from JSON as null.
  const known = (v: number | null): v is number => v !== null && !Number.isNaN(v);
  const percent = (v: number | null) => (known(v) ? (100 * v).toFixed(1) : "n/a");
  const md = [
    "# Table 3: contrastive learning with generated vs noised data",
    "",
    note,
    "",
    markdownTable(
      [
        "learner",
        "arm",
        "pool share %",
        ...METRICS.map(([, h]) => h),
        "every seed (logistic)",
        "paper (CIFAR-10, linear)",
      ],
      rows.map((r) => [
        r.learner,
        r.arm,
        (100 * r.poolShare).toFixed(1),
        ...METRICS.map(([m]) => formatEstimate(r[m])),
        r.logistic.values.map((v) => v.toFixed(2)).join(", "),
        paper(r.learner, r.arm) ?? "n/a",
      ]),
    ),
    "",
    "## Paired differences (points; mean [95 % t-interval] (sign counts) over seeds)",
    "",
    markdownTable(
      ["learner", "difference", ...METRICS.map(([, h]) => h), "per seed (logistic)", "reading"],
      differences.map((d) => [
        d.learner,
        d.comparison,
        ...METRICS.map(([m]) => formatDifference(d[m])),
        d.logistic.differences.map((v) => v.toFixed(2)).join(", "),
        d.reading,
      ]),
    ),
    "",
    `## Pools (${pools.length ? "as the first learner's cells recorded them" : "none"})`,
    "",
    markdownTable(
      ["arm", "seed", "pool sha-256", "model sha-256", "memorized %", "mean NN distance"],
      [
        ...pools.map((p) => [
          p.arm,
          p.seed,
          p.sha256.slice(0, 16),
          p.model ? p.model.slice(0, 16) : "-",
          percent(p.memorized),
          known(p.nearest) ? p.nearest.toFixed(3) : "n/a",
        ]),
        ...(heldOut
          ? [[
            "held-out real (null)",
            "-",
            "-",
            "-",
            percent(heldOut.memorizedFraction),
            heldOut.meanNearestDistance.toFixed(3),
          ]]
          : []),
      ],
    ),
    "",
    t.nnSample > 0
      ? `Memorized: nearest / second nearest training image < 1/3, on the first ${t.nnSample} images of each pool.`
      : "No memorization summary (table3.nnSample 0).",
    "",
  ].join("\n");
  const csvRow = (
    table: string,
    learner: string,
    arm: string,
    metric: string,
    e: Estimate | Paired,
    extra: { share?: number; paper?: number },
  ) => [
    table,
    learner,
    arm,
    metric,
    e.mean,
    e.sd,
    Number.isNaN(e.lo) ? "" : e.lo,
    Number.isNaN(e.hi) ? "" : e.hi,
    e.n,
    ("differences" in e ? e.differences : e.values).join(" "),
    "above" in e ? e.above : "",
    "below" in e ? e.below : "",
    extra.share ?? "",
    extra.paper ?? "",
  ];
  const csv = csvTable(
    [
      "table",
      "learner",
      "arm",
      "metric",
      "mean",
      "sd",
      "lo95",
      "hi95",
      "n",
      "values",
      "above",
      "below",
      "pool_share",
      "paper",
    ],
    [
      ...rows.flatMap((r) =>
        METRICS.map(([m]) =>
          csvRow("arm", r.learner, r.arm, m, r[m], {
            share: r.poolShare,
            paper: m === "logistic" ? paper(r.learner, r.arm) : undefined,
          })
        )
      ),
      ...differences.flatMap((d) =>
        METRICS.map(([m]) => csvRow("difference", d.learner, d.comparison, m, d[m], {}))
      ),
    ],
  );
  const strip = ({ a: _, b: __, ...d }: Paired & { a?: unknown; b?: unknown }) => d;
  await writeTables(dir, "table3", {
    md,
    csv,
    json: {
      note,
      poolShare,
      rows,
      differences: differences.map((d) => ({
        ...d,
        logistic: strip(d.logistic),
        ridge: strip(d.ridge),
        knn: strip(d.knn),
      })),
      pools,
      heldOut,
      paper: PAPER,
    },
  });
  const chartLearners = [...new Set(rows.map((r) => r.learner))];
  const interval = (e: Estimate) =>
    Number.isNaN(e.lo) ? { mean: e.mean, lo: e.mean, hi: e.mean } : e;
  await writeDrawing(
    barChart({
      title: "Linear probe (logistic) accuracy %, mean and 95 % t-interval over seeds",
      groups: chartLearners,
      series: [...new Set(rows.map((r) => r.arm))],
      value: (learner, arm) => {
        const r = rows.find((r) => r.learner === learner && r.arm === arm);
        return r && interval(r.logistic);
      },
    }),
    `${dir}/table3`,
  );
  if (differences.length) {
    const all = differences.flatMap((d) => [d.logistic.mean, d.logistic.lo, d.logistic.hi])
      .filter(Number.isFinite);
    const span = Math.max(...all.map(Math.abs), 0.1);
    await writeDrawing(
      barChart({
        title: "Paired differences (logistic probe, points), mean and 95 % t-interval over seeds",
        groups: [...new Set(differences.map((d) => d.learner))],
        series: [...new Set(differences.map((d) => d.comparison))],
        value: (learner, comparison) => {
          const d = differences.find((d) => d.learner === learner && d.comparison === comparison);
          return d && { mean: d.logistic.mean, lo: d.logistic.lo, hi: d.logistic.hi };
        },
        signed: true,
        step: span <= 2 ? 0.5 : span <= 6 ? 1 : span <= 20 ? 2 : 5,
      }),
      `${dir}/table3-differences`,
    );
  }
  return md;
}
