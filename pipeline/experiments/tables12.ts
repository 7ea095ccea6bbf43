// Tables 1 and 2 of the main paper on the experiment layer: a supervised classifier trained with a
// total of n images under five settings, for every size n, data set and seed:
//   half                  n/2 real images
//   generated:<g>         n/2 real + n/2 made by generator g fitted to those n/2
//   full-generated:<g>    n/2 real + n/2 made by generator g fitted to all n
//   noised                n/2 real + n/2 noise-perturbed copies of the n/2
//   full                  n real images
// and scored on the real test split. A cell's key is { dataset, n, setting, seed }: its real
// subset, generated images, batch order and initial weights all derive from the seed, and the n/2
// are a subset of the n (balanced per class). The paper's finding: with scarce data generated
// images help no more than noise; a generator fitted to more data helps more.
// A generator is any registry stage, or "trained-flow": a velocity U-Net trained by train-flow on
// the fit itself (trained_flow.ts, shared with Table 3), one model per fit memoised by content.

import { classifier } from "../../stages/learn/classifier.ts";
import { cosineWithWarmup } from "../../stages/learn/graph/schedules.ts";
import { shiftImages } from "../../stages/augment/shift.ts";
import { subset } from "../../stages/load/dataset.ts";
import type { Batch, Dataset } from "../../core/batch.ts";
import { concatBatches, imageSize, makeBatch } from "../../core/batch.ts";
import { keyError, SiaError } from "../../core/errors.ts";
import { sha256Hex } from "../../core/files.ts";
import { kNearest } from "../../core/nearest.ts";
import { Rng } from "../../core/rng.ts";
import { describeSection, resolveSection, suggestion } from "../../core/schema.ts";
import type { Resolved, Section } from "../../core/schema.ts";
import { DATA_SECTION, generatorStage } from "../config.ts";
import { difference, findGroup, formatDifference, groupCells } from "./aggregate.ts";
import type { Group } from "./aggregate.ts";
import { lineChart, writeDrawing } from "./charts.ts";
import { defineExperiment, product } from "./experiment.ts";
import type { CellContext, CellKey, StoredCell } from "./experiment.ts";
import {
  commonFields,
  labelledGeneratorFields,
  loadData,
  makePool,
  parseSeeds,
  resolveGenerators,
  TOP_KEYS,
} from "./shared.ts";
import type { GeneratorEntry } from "./shared.ts";
import { csvTable, fixed, markdownTable, writeTables } from "./tables.ts";
import { FLOW_TRAIN_KEYS, flowSampleParams, resolveFlowSpec, trainedFlow } from "./trained_flow.ts";
import type { FlowSpec } from "./trained_flow.ts";

export const DATASETS = ["mnist", "fashion-mnist"] as const;

export const TABLES12_SECTION = {
  datasets: {
    type: "string",
    default: DATASETS.join(","),
    doc: "comma list of mnist (embedded), fashion-mnist (Debian path)",
  },
  sizes: {
    type: "string",
    default: "100,200,400,1000,2000,4000,10000",
    doc: "comma list of total training sizes n (even)",
  },
  seeds: { type: "string", default: "3x", doc: "seeds: a comma list (0,1,2) or a count (3x)" },
  steps: {
    type: "int",
    min: 1,
    default: 300,
    doc: "optimisation steps per cell (the same compute for every setting)",
  },
  batch: { type: "int", min: 1, default: 32, doc: "images per step" },
  lr: {
    type: "number",
    above: 0,
    default: 3e-3,
    doc: "Adam's peak learning rate, cosine-decayed to 0 (so eval-mode batch norm settles)",
  },
  hidden: { type: "int", min: 1, default: 64, doc: "hidden width of the dense head" },
  widths: {
    type: "string",
    default: "32,64,128",
    doc: "channels of the small CNN's three conv blocks",
  },
  augment: {
    type: "int",
    min: 0,
    default: 0,
    doc: "light augmentation: random shifts of up to this many pixels (0 = off, as in the paper)",
  },
  test: { type: "int", min: 10, default: 10000, doc: "real test images scored (a fixed subset)" },
} as const satisfies Section;

/** The stage name of a trained flow's columns: train-flow on the fit, then onnx-flow. */
export const TRAINED_FLOW = "trained-flow";

/** A column pair's generator: a registry stage, or a flow trained per fit (`flow`). */
export type Tables12Generator = GeneratorEntry & { readonly flow?: FlowSpec };

export interface Tables12Config {
  readonly seed: number;
  readonly description: string;
  readonly data: Resolved<typeof DATA_SECTION>;
  readonly tables12: Resolved<typeof TABLES12_SECTION>;
  /** Label -> generator stage and params: one generated / full-generated column pair each. */
  readonly generators: Record<string, Tables12Generator>;
  /** The noised setting's noise parameters. */
  readonly noise: Resolved<Section>;
  readonly out: { dir: string };
}

export interface Tables12Cell {
  /** Test accuracy on [0, 1]. */
  readonly accuracy: number;
  readonly testImages: number;
  /** The training set by provenance. */
  readonly real: number;
  readonly generated: number;
  readonly noised: number;
  readonly steps: number;
  readonly finalLoss: number;
  /** A trained flow's column: the sha-256 of the model its images came from. */
  readonly model?: string;
}

interface Shared {
  readonly splits: Record<string, { train: Dataset; test: Dataset }>;
}

/**
 * The main paper's Tables 1 and 2 (test accuracy %): per data set and n, the five columns as the
 * extraction left them. c1 is half and c5 full (c5 at n equals c1 at 2n); c2 to c4 are
 * generated, full generated and noised in an order the extraction lost.
 */
export const PAPER: Record<string, Record<number, readonly number[]>> = {
  mnist: {
    100: [68.84, 75.3, 68.61, 73.74, 77.57],
    200: [77.57, 83, 78.33, 81.8, 81.7],
    400: [81.7, 84.96, 80.43, 84.88, 85.97],
    1000: [87.29, 88.65, 86.18, 88.69, 89.22],
    2000: [89.22, 90.44, 89.78, 90.48, 91.3],
    4000: [91.3, 92.94, 91.82, 92.24, 93.15],
    10000: [93.15, 94.23, 93.36, 93.42, 94.48],
  },
  "fashion-mnist": {
    100: [62.26, 68.69, 65.89, 60.8, 68.32],
    200: [68.32, 73.78, 70.78, 67.81, 71.04],
    400: [71.04, 76.18, 73.07, 72.5, 75.77],
    1000: [77.64, 79.6, 78.55, 76.9, 80.14],
    2000: [80.14, 82.32, 81.41, 80, 81.83],
    4000: [81.83, 84.21, 82.65, 81.5, 82.64],
    10000: [84.17, 84.82, 83.72, 83.31, 84.14],
  },
};

function list(text: string): string[] {
  return text.split(",").map((s) => s.trim()).filter((s) => s);
}

function sizesOf(config: Tables12Config): number[] {
  return list(config.tables12.sizes).map(Number);
}

function widthsOf(text: string): [number, number, number] {
  const w = list(text).map(Number);
  if (w.length !== 3 || !w.every((v) => Number.isInteger(v) && v >= 1)) {
    throw keyError("tables12.widths", `expected three channel counts (32,64,128), got "${text}"`);
  }
  return w as [number, number, number];
}

export function settings(config: Tables12Config): string[] {
  const labels = Object.keys(config.generators);
  return [
    "half",
    ...labels.map((g) => `generated:${g}`),
    ...labels.map((g) => `full-generated:${g}`),
    "noised",
    "full",
  ];
}

const isFlow = (entry: unknown) =>
  typeof entry === "object" && entry !== null && "generator" in entry &&
  entry.generator === TRAINED_FLOW;

/** The generators map, a trained flow's entries taking { train, sample } as their params. */
function resolveColumns(raw: unknown): Record<string, Tables12Generator> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return resolveGenerators(raw, true);
  }
  const entries = Object.entries(raw as Record<string, unknown>);
  const others = resolveGenerators(
    Object.fromEntries(entries.filter(([, e]) => !isFlow(e))),
    true,
  );
  return Object.fromEntries(entries.map(([label, e]) => {
    if (!isFlow(e)) return [label, others[label]];
    for (const k of Object.keys(e as object)) {
      if (k !== "generator" && k !== "params") {
        throw keyError(
          `generators.${label}.${k}`,
          `unknown key${suggestion(k, ["generator", "params"])}`,
        );
      }
    }
    const spec = resolveFlowSpec((e as { params?: unknown }).params, `generators.${label}.params.`);
    return [label, { stage: TRAINED_FLOW, params: {}, flow: spec }];
  }));
}

export function resolveTables12Config(raw: Record<string, unknown>): Tables12Config {
  const top = [...TOP_KEYS, "tables12", "generators", "noise"];
  for (const key of Object.keys(raw)) {
    if (!top.includes(key)) throw keyError(key, `unknown key${suggestion(key, top)}`);
  }
  const t = resolveSection(TABLES12_SECTION, raw.tables12, "tables12.");
  for (const name of list(t.datasets)) {
    if (!(DATASETS as readonly string[]).includes(name)) {
      throw keyError(
        "tables12.datasets",
        `unknown data set "${name}"${suggestion(name, DATASETS)}`,
      );
    }
  }
  for (const n of list(t.sizes)) {
    if (!/^\d+$/.test(n) || Number(n) < 2 || Number(n) % 2 !== 0) {
      throw keyError("tables12.sizes", `a size is an even number >= 2, got "${n}"`);
    }
  }
  parseSeeds(t.seeds, "tables12.seeds");
  widthsOf(t.widths);
  const data = resolveSection(DATA_SECTION, raw.data, "data.");
  for (const k of ["source", "size"] as const) {
    if (raw.data && typeof raw.data === "object" && k in raw.data) {
      throw keyError(`data.${k}`, `set by tables12.${k === "source" ? "datasets" : "sizes"} here`);
    }
  }
  const out = (raw.out ?? {}) as Record<string, unknown>;
  if (typeof out.dir !== "string" || !out.dir) {
    throw keyError("out.dir", "no output directory given");
  }
  return {
    seed: typeof raw.seed === "number" ? raw.seed : 0,
    description: typeof raw.description === "string" ? raw.description : "",
    data,
    tables12: t,
    generators: resolveColumns(
      raw.generators ?? {
        ode: { generator: "closed-form", params: { sampler: "ode", steps: 50 } },
        sde: { generator: "closed-form", params: { sampler: "sde", steps: 50 } },
      },
    ),
    noise: resolveSection(generatorStage("noise").params, raw.noise, "noise."),
    out: { dir: out.dir },
  };
}

function realBatch(ds: Dataset): Batch {
  return makeBatch({ ...ds, images: ds.images, provenance: "real" });
}

/** What a trained flow's column needs of the cell's context: the memo, the log, Ctrl-C. */
export type FlowContext = Pick<CellContext<unknown>, "memo" | "log" | "stop">;

/**
 * A cell's training set: its real images and, for the mixed settings, the n/2 images made from
 * them, with the ids of the real images any generator was fitted to (`fit`) and, for a trained
 * flow, the sha-256 of its model.
 */
export async function trainingSet(
  config: Tables12Config,
  key: CellKey,
  train: Dataset,
  context: FlowContext,
): Promise<{ set: Batch; fit: Int32Array; model?: string }> {
  const [n, setting, seed] = [Number(key.n), String(key.setting), Number(key.seed)];
  const all = subset(train, n, config.data.balanced, seed);
  const half = subset(all, n / 2, config.data.balanced, seed);
  if (setting === "half") return { set: realBatch(half), fit: new Int32Array(0) };
  if (setting === "full") return { set: realBatch(all), fit: new Int32Array(0) };
  const [kind, label] = setting.split(":");
  const entry: Tables12Generator = kind === "noised"
    ? { stage: "noise", params: config.noise }
    : config.generators[label];
  const fitted = kind === "full-generated" ? all : half;
  const where = kind === "noised" ? "noise" : `generators.${label}`;
  const [, h, w, c] = train.shape;
  if (entry.flow) {
    const { pool, model } = await flowPool(config, key, entry.flow, fitted, context, where);
    return { set: concatBatches([realBatch(half), pool], [h, w, c]), fit: fitted.ids, model };
  }
  const pool = await makePool(entry.stage, entry.params, fitted, n / 2, seed, where);
  if (pool.labels.some((l) => l < 0)) {
    throw new SiaError(`${where}: makes unlabeled images; a classifier needs labels (conditional)`);
  }
  return { set: concatBatches([realBatch(half), pool], [h, w, c]), fit: fitted.ids };
}

/**
 * n/2 images from a flow trained on `fitted` alone (no test image: train-flow's held-out loss is
 * off), labelled by their nearest image of `fitted`. The flow is unconditional, so the label is
 * the only one its training data can give: for a flow that copies (small n) it is the copied
 * image's. The model is memoised by content (the fitted images, the seed and the options), so
 * every column sampling the same fit, and every rerun, shares one training.
 */
async function flowPool(
  config: Tables12Config,
  key: CellKey,
  spec: FlowSpec,
  fitted: Dataset,
  context: FlowContext,
  where: string,
): Promise<{ pool: Batch; model: string }> {
  const [dataset, n, seed] = [String(key.dataset), Number(key.n), Number(key.seed)];
  const images = await sha256Hex(
    new Uint8Array(fitted.images.buffer, fitted.images.byteOffset, fitted.images.byteLength),
  );
  const share = fitted.shape[0] === n ? "all n" : "the n/2";
  const { model, sha256 } = await trainedFlow({
    spec,
    seed,
    data: { train: fitted, test: null },
    dataConfig: { ...config.data, source: dataset, size: fitted.shape[0] },
    identity: { dataset, images, seed, train: spec.train },
    outDir: config.out.dir,
    what: `a flow on ${share} (${fitted.shape[0]} images of ${dataset}, n ${n}, seed ${seed})`,
  }, context);
  const params = flowSampleParams(spec, model, `${where}.params.sample.`);
  const pool = await makePool("onnx-flow", params, fitted, n / 2, seed, where);
  const d = imageSize(fitted.shape);
  const nearest = kNearest(pool.images, fitted.images, d, 1).index;
  const labels = Int32Array.from(nearest, (i) => fitted.labels[i]);
  return { pool: makeBatch({ ...pool, labels }), model: sha256 };
}

async function runCell(
  config: Tables12Config,
  key: CellKey,
  context: CellContext<Shared>,
): Promise<Tables12Cell> {
  const t = config.tables12;
  const { train, test } = context.shared.splits[String(key.dataset)];
  const seed = Number(key.seed);
  const { set, model: flow } = await trainingSet(config, key, train, context);
  const input = set.shape.slice(1) as unknown as [number, number, number];
  const classes = Math.max(...train.labels) + 1;
  const model = await classifier({
    input,
    classes,
    batch: t.batch,
    optimizer: { kind: "adam", beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 },
    seed,
    hidden: t.hidden,
    widths: widthsOf(t.widths),
  });
  let stopped = false;
  context.stop.then(() => (stopped = true));
  try {
    // Seeded epochs: a fresh permutation of the training set each, cut into batches.
    const count = set.shape[0];
    const size = imageSize(set.shape);
    const x = new Float32Array(t.batch * size);
    const y = new Int32Array(t.batch);
    let order: Int32Array = new Int32Array(0);
    let loss = NaN;
    for (let step = 0; step < t.steps; step++) {
      if (stopped) throw new Error("stopped");
      for (let j = 0; j < t.batch; j++) {
        const position = step * t.batch + j;
        if (position % count === 0) {
          order = new Rng(seed, "tables12-order", position / count).permutation(count);
        }
        const i = order[position % count];
        x.set(set.images.subarray(i * size, (i + 1) * size), j * size);
        y[j] = set.labels[i];
      }
      const views = shiftImages(x, [t.batch, ...input], t.augment, seed, step);
      // Decayed to 0: the batch-norm running statistics then describe the final weights.
      const lr = cosineWithWarmup(step, { base: t.lr, warmup: 0, total: t.steps });
      loss = await model.step(views, y, lr);
      if (!Number.isFinite(loss)) {
        throw new SiaError(`tables12: the loss diverged at step ${step + 1} (${loss})`);
      }
      context.tick(1, { loss, lr });
    }
    const predicted = await model.predict(test.images, test.shape[0]);
    const correct = predicted.reduce((s, p, i) => s + (p === test.labels[i] ? 1 : 0), 0);
    const by = (p: number) => set.provenance.filter((v) => v === p).length;
    return {
      accuracy: correct / test.shape[0],
      testImages: test.shape[0],
      real: by(0),
      generated: by(1),
      noised: by(2),
      steps: t.steps,
      finalLoss: loss,
      ...(flow ? { model: flow } : {}),
    };
  } finally {
    await model.release();
  }
}

/** "81.20 ± 0.90" (mean and 95 % half-width over seeds), or the mean alone for one seed. */
function estimate(g: Group | undefined): string {
  if (!g) return "n/a";
  return Number.isNaN(g.lo)
    ? g.mean.toFixed(2)
    : `${g.mean.toFixed(2)} ± ${(g.hi - g.mean).toFixed(2)}`;
}

/** Whether a paired interval lies above 0, below 0, or covers it. */
function side(d: { lo: number; hi: number }): "above" | "below" | "covers" {
  return d.lo > 0 ? "above" : d.hi < 0 ? "below" : "covers";
}

async function report(
  config: Tables12Config,
  cells: readonly StoredCell<Tables12Cell>[],
  dir: string,
): Promise<string> {
  const t = config.tables12;
  const datasets = list(t.datasets);
  const sizes = sizesOf(config);
  const columns = settings(config);
  const labels = Object.keys(config.generators);
  const groups = groupCells(cells, (r: Tables12Cell) => 100 * r.accuracy);
  const group = (dataset: string, n: number, setting: string) =>
    findGroup(groups, { dataset, n, setting });
  const seeds = parseSeeds(t.seeds, "tables12.seeds");
  const note =
    `${
      config.description || "Tables 1 and 2"
    }: test accuracy % (mean ± 95 % t half-width over ${seeds.length} seeds: ${
      seeds.join(", ")
    }) of the small CNN (conv ${t.widths}, dense ${t.hidden}) after ${t.steps} Adam steps of ${t.batch} images (lr ${t.lr}, cosine to 0), ` +
    `light augmentation ${
      t.augment ? `on (shifts up to ${t.augment} px)` : "off"
    }; n is the total training size; ` +
    `a seed draws the real subset, the generated images, the batch order and the weights. ` +
    `The paper's c1 (half) and c5 (full) are beside ours; its c2 to c4 (generated, full generated, noised in an order its extraction lost) are listed as they are.` +
    (labels.some((g) => config.generators[g].flow)
      ? ` A trained flow's column: a velocity U-Net trained by train-flow on the fit alone (seeded by the cell's seed), sampled by onnx-flow; it is unconditional, so each image takes the label of its nearest image of the fit.`
      : "");
  const lines = [`# Tables 1 and 2: does generated data help a classifier?`, "", note, ""];
  const rows: {
    dataset: string;
    n: number;
    setting: string;
    mean: number;
    sd: number;
    lo: number;
    hi: number;
    seeds: readonly (string | number)[];
    values: readonly number[];
    paper: number | null;
  }[] = [];
  const differences: Record<string, unknown>[] = [];
  for (const dataset of datasets) {
    const paper = PAPER[dataset] ?? {};
    lines.push(`## ${dataset}`, "");
    lines.push(markdownTable(
      ["n", ...columns, "paper half (c1)", "paper full (c5)", "paper c2, c3, c4"],
      sizes.map((n) => {
        const p = paper[n];
        return [
          n,
          ...columns.map((s) => estimate(group(dataset, n, s))),
          p ? p[0] : "n/a",
          p ? p[4] : "n/a",
          p ? p.slice(1, 4).join(", ") : "n/a",
        ];
      }),
    ));
    lines.push("");
    const pairs: [string, string, string][] = labels.flatMap((g) => [
      [`generated:${g}`, "noised", `generated:${g} - noised`],
      [`full-generated:${g}`, `generated:${g}`, `full-generated:${g} - generated:${g}`],
    ]);
    pairs.push(["full", "half", "full - half"]);
    lines.push(
      "Paired differences (points; mean [95 % t-interval] (seeds above 0+, below 0-)):",
      "",
    );
    lines.push(markdownTable(
      ["n", ...pairs.map(([, , name]) => name)],
      sizes.map((n) => [
        n,
        ...pairs.map(([a, b, name]) => {
          const ga = group(dataset, n, a);
          const gb = group(dataset, n, b);
          if (!ga || !gb) return "n/a";
          const d = difference(ga, gb);
          const { mean, sd, lo, hi, pairs, above, below, ties } = d;
          differences.push({
            dataset,
            n,
            comparison: name,
            mean,
            sd,
            lo,
            hi,
            seeds: pairs,
            differences: d.differences,
            above,
            below,
            ties,
            side: side(d),
          });
          return formatDifference(d);
        }),
      ]),
    ));
    lines.push("");
    for (const n of sizes) {
      for (const s of columns) {
        const g = group(dataset, n, s);
        if (!g) continue;
        const c = paper[n];
        const reference = s === "half" ? c?.[0] : s === "full" ? c?.[4] : undefined;
        const { mean, sd, lo, hi, pairs, values } = g;
        rows.push({
          dataset,
          n,
          setting: s,
          mean,
          sd,
          lo,
          hi,
          seeds: pairs,
          values,
          paper: reference ?? null,
        });
      }
    }
  }
  // The trained flows by content: which model each flow column's images came from.
  const models = cells.flatMap(({ key, result }) =>
    result.model
      ? [{
        dataset: String(key.dataset),
        n: Number(key.n),
        setting: String(key.setting),
        seed: Number(key.seed),
        model: result.model,
      }]
      : []
  );
  if (models.length) {
    lines.push(
      "## Trained flows (model sha-256; one model per fit, shared by the columns that sample it)",
      "",
      markdownTable(
        ["data set", "n", "setting", "seed", "model sha-256"],
        models.map((m) => [m.dataset, m.n, m.setting, m.seed, m.model.slice(0, 16)]),
      ),
      "",
    );
  }
  lines.push("## Reading", "", ...reading(differences, labels), "");
  const md = lines.join("\n");
  const csv = csvTable(
    ["dataset", "n", "setting", "mean", "sd", "lo", "hi", "seeds", "values", "paper"],
    rows.map((r) => [
      r.dataset,
      r.n,
      r.setting,
      r.mean,
      r.sd,
      fixed(r.lo, 6),
      fixed(r.hi, 6),
      r.seeds.join(" "),
      r.values.join(" "),
      r.paper ?? "",
    ]),
  );
  await writeTables(dir, "tables12", {
    md,
    csv,
    json: { note, rows, differences, ...(models.length ? { models } : {}), paper: PAPER },
  });
  await writeDrawing(
    lineChart({
      title: "Test accuracy (%) vs training size n, mean and 95 % interval over seeds",
      xLabel: "n (total training images)",
      yLabel: "test accuracy %",
      panels: datasets.map((dataset) => ({
        title: dataset,
        xs: sizes,
        series: columns.map((s) => ({
          name: s,
          points: sizes.map((n) => group(dataset, n, s)),
          reference: s === "half" || s === "full"
            ? sizes.map((n) => PAPER[dataset]?.[n]?.[s === "half" ? 0 : 4])
            : undefined,
        })),
      })),
    }),
    `${dir}/tables12`,
  );
  return md;
}

/** The paper's two findings read from the paired intervals, one line per generator and finding. */
function reading(
  differences: readonly Record<string, unknown>[],
  labels: readonly string[],
): string[] {
  const lines: string[] = [];
  const where = (comparison: string, want: string) =>
    differences.filter((d) => d.comparison === comparison && d.side === want).map((d) =>
      `${d.dataset} ${d.n}`
    );
  for (const g of labels) {
    const gen = `generated:${g} - noised`;
    const full = `full-generated:${g} - generated:${g}`;
    const fmt = (xs: string[]) => (xs.length ? xs.join(", ") : "none");
    lines.push(
      `- Finding 1 (${g}): generated helps no more than noise where the interval of ${gen} covers 0 or lies below it. ` +
        `Above 0 (generated beats noise): ${fmt(where(gen, "above"))}; below 0: ${
          fmt(where(gen, "below"))
        }; covers 0: ${fmt(where(gen, "covers"))}.`,
      `- Finding 2 (${g}): a generator fitted to all n helps more where ${full} lies above 0: ${
        fmt(where(full, "above"))
      }; below 0: ${fmt(where(full, "below"))}; covers 0: ${fmt(where(full, "covers"))}.`,
    );
  }
  return lines;
}

export const tables12 = defineExperiment<Tables12Config, Shared, Tables12Cell>({
  name: "tables12",
  summary:
    "a classifier on half, full, generated, full-generated and noised training sets (the paper's Tables 1 and 2)",
  unit: "[tables12] steps",
  describe: () => [
    ...describeSection(TABLES12_SECTION, "tables12."),
    `  generators.<label>.generator, .params  one generated:<label> / full-generated:<label> column pair per entry: a generator stage (default: the label) and its params`,
    `  generators.<label>.generator "${TRAINED_FLOW}"  a flow trained on each fit: .params.train.* (${
      FLOW_TRAIN_KEYS.join(", ")
    }), .params.sample.* (onnx-flow's sampler options)`,
    "  noise.*              the noised setting's noise params (r, s, k, clip)",
  ],
  resolve: resolveTables12Config,
  fields(raw) {
    const fields = commonFields();
    for (const [k, f] of Object.entries(TABLES12_SECTION)) fields[`tables12.${k}`] = f;
    for (const [k, f] of Object.entries(generatorStage("noise").params)) fields[`noise.${k}`] = f;
    return {
      ...fields,
      ...labelledGeneratorFields(raw.generators, {
        ode: { generator: "closed-form" },
        sde: { generator: "closed-form" },
      }, TRAINED_FLOW),
    };
  },
  outDir: (config) => config.out.dir,
  grid: (config) =>
    product({
      dataset: list(config.tables12.datasets),
      n: sizesOf(config),
      setting: settings(config),
      seed: parseSeeds(config.tables12.seeds, "tables12.seeds"),
    }),
  identity(config, key) {
    const { datasets: _, sizes: __, seeds: ___, ...tables12 } = config.tables12;
    const [kind, label] = String(key.setting).split(":");
    return {
      seed: config.seed,
      data: config.data,
      tables12,
      generator: kind === "noised" ? config.noise : label ? config.generators[label] : null,
    };
  },
  cost: (config) => config.tables12.steps,
  async prepare(config, log) {
    const splits: Shared["splits"] = {};
    for (const dataset of list(config.tables12.datasets)) {
      // No fallback: a missing Fashion-MNIST must not turn into a second MNIST table.
      const data = { ...config.data, source: dataset };
      const { train, test } = await loadData(data, log, "Tables 1 and 2", false);
      const scored = subset(
        test,
        Math.min(config.tables12.test, test.shape[0]),
        false,
        config.seed,
      );
      splits[dataset] = { train, test: scored };
      // No test image may enter training or a generator: for the embedded MNIST's seeded split
      // the ids share one index space, so disjointness is checked; a source with its own test
      // file (Fashion-MNIST) keeps them apart by construction.
      if (dataset === "mnist") {
        const seen = new Set(train.ids);
        if (scored.ids.some((id) => seen.has(id))) {
          throw new Error("tables12: a test image is in the training split");
        }
      }
      log(
        `[sia] Tables 1 and 2: ${dataset}: ${train.shape[0]} training images to draw from, ${
          scored.shape[0]
        } test images scored`,
      );
    }
    return { splits };
  },
  run: runCell,
  metrics: { accuracy: { label: "test accuracy %", scale: 100 } },
  describeResult: (r) =>
    `accuracy ${
      (100 * r.accuracy).toFixed(2)
    } % (${r.real} real, ${r.generated} generated, ${r.noised} noised)`,
  report: (config, cells, _, dir) => report(config, cells, dir),
});
