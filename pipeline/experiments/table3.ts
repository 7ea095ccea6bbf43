// Table 3 on the experiment layer: for each seed, learner and arm, train the encoder for a fixed
// step budget on views of the arm's data and probe it on the real test split.
//   baseline          strong views of real images only
//   generated:<name>  weak views of real images (replicated dup times) + the generator's pool
//   noised            weak views of real images (replicated dup times) + a noise-perturbed pool
// plus a random-init cell per seed (the floor every arm must beat). A cell's key is
// { learner, arm, seed }; its pool, batches, views and initial weights all derive from the seed.

import { filter, lastValueFrom, NEVER, takeUntil, tap } from "rxjs";
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
import type { Dataset } from "../../core/batch.ts";
import { keyError } from "../../core/errors.ts";
import { describeSection, resolveSection, suggestion } from "../../core/schema.ts";
import type { Resolved, Section } from "../../core/schema.ts";
import { DATA_SECTION, generatorStage } from "../config.ts";
import { Credits, paced } from "../flow.ts";
import { groupCells } from "./aggregate.ts";
import { barChart, writeDrawing } from "./charts.ts";
import { defineExperiment, product } from "./experiment.ts";
import type { CellContext, CellKey } from "./experiment.ts";
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
} as const satisfies Section;

export interface Table3Config {
  readonly seed: number;
  readonly description: string;
  readonly data: Resolved<typeof DATA_SECTION>;
  readonly table3: Resolved<typeof TABLE3_SECTION>;
  /** Generator name -> resolved params, one "generated:<name>" arm each. */
  readonly generators: Record<string, Resolved<Section>>;
  /** The noised arm's noise parameters. */
  readonly noise: Resolved<Section>;
  readonly out: { dir: string };
}

export interface Table3Cell {
  readonly linear: number;
  readonly knn: number;
  readonly testImages: number;
  readonly steps: number;
  readonly finalLoss: number;
}

interface Shared {
  readonly train: Dataset;
  readonly probes: ProbeSinkOptions;
}

/** The main paper's Table 3 (CIFAR-10, linear accuracy %), for reference beside ours. */
export const PAPER: Record<string, Record<string, number>> = {
  swav: { baseline: 88.94, generated: 90.11, noised: 90.09 },
  simsiam: { baseline: 88.82, generated: 90.8, noised: 90.68 },
  simclr: { baseline: 90.14, generated: 91.71, noised: 91.41 },
  moco: { baseline: 91.72, generated: 92.95, noised: 92.84 },
};

export function resolveTable3Config(raw: Record<string, unknown>): Table3Config {
  for (const key of Object.keys(raw)) {
    const top = [...TOP_KEYS, "table3", "generators", "noise"];
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
  return ["baseline", ...Object.keys(config.generators).map((g) => `generated:${g}`), "noised"];
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
    const { linear, knn, testImages } = await probeEncoder(params, probes);
    return { linear, knn, testImages, steps: 0, finalLoss: NaN };
  }
  const extra = arm === "baseline" ? null : await context.memo(`${arm}|${seed}`, () => {
    context.log(`[sia] making the ${arm} pool (${t.pool} images, seed ${seed})`);
    const name = arm === "noised" ? "noise" : arm.slice("generated:".length);
    const params = arm === "noised" ? config.noise : config.generators[name];
    return makePool(name, params, train, t.pool, seed, `generators.${name}`);
  }, POOL_CODEC);
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
    const { linear, knn, testImages } = probe;
    return { linear, knn, testImages, steps: t.steps, finalLoss: loss };
  } finally {
    await model.release();
  }
}

export const table3 = defineExperiment<Table3Config, Shared, Table3Cell>({
  name: "table3",
  summary: "contrastive learners on real, generated and noised data, probed (the paper's Table 3)",
  unit: "[table3] steps",
  describe: () => [
    ...describeSection(TABLE3_SECTION, "table3."),
    `  generators.<name>.*  one "generated:<name>" arm per generator, its params as under generate.params`,
    "  noise.*              the noised arm's noise params (r, s, k, clip)",
  ],
  resolve: resolveTable3Config,
  fields(raw) {
    const fields = commonFields();
    const prefixed = (prefix: string, section: Section) => {
      for (const [k, f] of Object.entries(section)) fields[`${prefix}${k}`] = f;
    };
    prefixed("table3.", TABLE3_SECTION);
    prefixed("noise.", generatorStage("noise").params);
    const generators = raw.generators && typeof raw.generators === "object"
      ? Object.keys(raw.generators)
      : ["closed-form"];
    for (const name of generators) prefixed(`generators.${name}.`, generatorStage(name).params);
    return fields;
  },
  outDir: (config) => config.out.dir,
  grid,
  identity(config, key) {
    const { learners: _, seeds: __, ...table3 } = config.table3;
    const arm = String(key.arm);
    return {
      seed: config.seed,
      data: config.data,
      table3,
      arm: arm === "noised"
        ? config.noise
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
      probes: { encoder: encoderOf(config), input, train: probeTrain, test: probeTest },
    };
  },
  run: runCell,
  metrics: { linear: { label: "linear probe %", scale: 100 }, knn: { label: "kNN %", scale: 100 } },
  describeResult: (r) =>
    `linear ${(100 * r.linear).toFixed(2)} %, kNN ${
      (100 * r.knn).toFixed(2)
    } % (${r.testImages} test images)`,
  async report(config, cells, { train, probes }, dir) {
    const t = config.table3;
    const learners = ["random-init", ...t.learners.split(",")];
    const armOrder = ["floor", ...arms(config)];
    const rows = (["linear", "knn"] as const).flatMap((metric) => {
      const groups = groupCells(cells, (r: Table3Cell) => 100 * r[metric]);
      return learners.flatMap((learner) =>
        armOrder.flatMap((arm) => {
          const g = groups.find((g) => g.key.learner === learner && g.key.arm === arm);
          return g
            ? [{ learner, arm, metric, mean: g.mean, std: g.sd, values: [...g.values] }]
            : [];
        })
      );
    });
    const poolShare = realShare(train.shape[0], t.pool, t.dup);
    const note =
      `${config.description || "Table 3"}: ${train.source}, ${
        train.shape[0]
      } training images, ${t.encoder}, ` +
      `${t.steps} steps x ${t.batch} images per cell, seeds ${t.seeds}; probes on ${
        probes.test.shape[0]
      } real test images ` +
      `(linear: ridge on frozen features; kNN: k 200, T 0.1). The mixed arms replicate the real images ${t.dup} ` +
      `times beside a pool of ${t.pool}, so ${
        (100 * (1 - poolShare)).toFixed(1)
      } % of their draws come from the pool (Wang et al.: about 67 %). The paper's column is CIFAR-10 with ResNet-18 at full scale, ` +
      `for reference only.`;
    const paper = (learner: string, arm: string) => PAPER[learner]?.[arm.split(":")[0]];
    const fmt = (r: { mean: number; std: number; values: number[] }) =>
      `${r.mean.toFixed(2)} ± ${r.std.toFixed(2)} (n=${r.values.length})`;
    const linear = rows.filter((r) => r.metric === "linear");
    const md = [
      "# Table 3: contrastive learning with generated vs noised data",
      "",
      note,
      "",
      markdownTable(
        [
          "learner",
          "arm",
          "linear probe %",
          "kNN %",
          "every seed (linear)",
          "paper (CIFAR-10, linear)",
        ],
        linear.map((r) => {
          const knn = rows.find((k) =>
            k.metric === "knn" && k.learner === r.learner && k.arm === r.arm
          )!;
          return [
            r.learner,
            r.arm,
            fmt(r),
            fmt(knn),
            r.values.map((v) => v.toFixed(2)).join(", "),
            paper(r.learner, r.arm) ?? "n/a",
          ];
        }),
      ),
      "",
    ].join("\n");
    const csv = csvTable(
      ["learner", "arm", "metric", "mean", "std", "n", "values", "paper"],
      rows.map((r) => [
        r.learner,
        r.arm,
        r.metric,
        r.mean,
        r.std,
        r.values.length,
        r.values.join(" "),
        r.metric === "linear" ? paper(r.learner, r.arm) ?? "" : "",
      ]),
    );
    await writeTables(dir, "table3", { md, csv, json: { note, rows, paper: PAPER } });
    const chartLearners = [...new Set(linear.map((r) => r.learner))];
    await writeDrawing(
      barChart({
        title: "Linear probe accuracy (%), mean and 1 sd over seeds",
        groups: chartLearners,
        series: [...new Set(linear.map((r) => r.arm))],
        value: (learner, arm) => {
          const r = linear.find((r) => r.learner === learner && r.arm === arm);
          return r && { mean: r.mean, lo: r.mean - r.std, hi: r.mean + r.std };
        },
      }),
      `${dir}/table3`,
    );
    return md;
  },
});
