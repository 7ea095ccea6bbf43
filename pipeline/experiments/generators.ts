// Which generators create and which memorize, measured side by side (issue 13): for each data set
// and generator (any stage or user module, by config) a cell makes a pool of class-conditional
// samples from a training split T and scores it against T and a hidden split H that no stage
// reads:
//   copy rate        share of samples with |g - NN1(T)| / |g - NN2(T)| < 1/3 (H's own is the null)
//   Z                Meehan et al.'s data-copying Z_U: Mann-Whitney of the samples' NN distances
//                    to T against H's (negative: closer to T than fresh data, i.e. copying)
//   denoising error  E |m~(beta h + sigma z) - h|^2 / d over h in H at one t, for generators
//                    exposing a denoiser (core/stage.ts DenoiserProbe); the exact m overfits T
//   NN distance      mean distance of a sample to its nearest training image
//   class fidelity   share of samples a small CNN trained on T labels with their class
//   cost             wall seconds of the pool (precompute included), the stage's NFE and facts
// and, when the config has a `flow` ({ train, sample }), a `trained-flow` row: a train-flow
// velocity network trained on T alone (per data set, memoised by content: trained_flow.ts) and
// sampled through onnx-flow, scored with the same columns (its training time is its precompute);
// plus a grid image of the first samples per cell. Calibration (sigma_s by hand, P(t) and eta by
// each stage's own held-out share of T) never touches H.

import { imageSize } from "../../core/batch.ts";
import type { Dataset } from "../../core/batch.ts";
import { keyError } from "../../core/errors.ts";
import { atomicWrite } from "../../core/files.ts";
import { kNearest } from "../../core/nearest.ts";
import { encodePng } from "../../core/plot/png.ts";
import { Rng } from "../../core/rng.ts";
import { describeSection, resolveSection, suggestion } from "../../core/schema.ts";
import type { Resolved, Section } from "../../core/schema.ts";
import { mannWhitneyZ } from "../../core/stats.ts";
import { classifier } from "../../stages/learn/classifier.ts";
import { shiftImages } from "../../stages/augment/shift.ts";
import { cosineWithWarmup } from "../../stages/learn/graph/schedules.ts";
import { subset } from "../../stages/load/dataset.ts";
import { closeness } from "../../stages/sink/summary.ts";
import { DATA_SECTION, generatorStage } from "../config.ts";
import { cellFileName, defineExperiment, product } from "./experiment.ts";
import {
  commonFields,
  labelledGeneratorFields,
  loadData,
  makePool,
  resolveGenerators,
  TOP_KEYS,
} from "./shared.ts";
import type { GeneratorEntry } from "./shared.ts";
import { flowSampleParams, flowSpecFields, resolveFlowSpec, trainedFlow } from "./trained_flow.ts";
import type { FlowSpec } from "./trained_flow.ts";
import { csvTable, fixed, markdownTable, writeTables } from "./tables.ts";

const DATASETS = ["mnist", "fashion-mnist"] as const;

export const GENERATORS_SECTION = {
  datasets: { type: "string", default: "mnist,fashion-mnist", doc: "data sets (comma list)" },
  train: { type: "int", min: 20, default: 500, doc: "T: class-balanced training images" },
  hidden: { type: "int", min: 2, default: 200, doc: "H: held-out test images scored against T" },
  samples: { type: "int", min: 2, default: 100, doc: "samples per generator" },
  denoiseT: {
    type: "number",
    above: 0,
    max: 0.99,
    default: 0.5,
    doc: "t of the held-out denoising error",
  },
  denoiseImages: { type: "int", min: 1, default: 50, doc: "held-out images it averages over" },
  classifierSteps: { type: "int", min: 1, default: 300, doc: "training steps of the classifier" },
  classifierShift: {
    type: "int",
    min: 0,
    max: 4,
    default: 0,
    doc: "the classifier's light augmentation: random shifts up to this many pixels (0: none)",
  },
  gridSide: { type: "int", min: 1, default: 10, doc: "the sample grid image is side x side" },
} as const satisfies Section;

export interface GeneratorsConfig {
  readonly seed: number;
  readonly description: string;
  readonly data: Resolved<typeof DATA_SECTION>;
  readonly compare: Resolved<typeof GENERATORS_SECTION>;
  readonly generators: Record<string, GeneratorEntry>;
  /** The trained-flow row's training and sampling options; null: no such row. */
  readonly flow: FlowSpec | null;
  readonly out: { dir: string };
}

export interface GeneratorsCell {
  readonly samples: number;
  readonly copyRate: number;
  readonly z: number;
  /** Per-pixel mean squared error; null for a generator without a denoiser (JSON has no NaN). */
  readonly denoiseError: number | null;
  readonly nearest: number;
  /** null for unlabeled samples. */
  readonly fidelity: number | null;
  readonly seconds: number;
  readonly facts: Record<string, unknown>;
}

interface Split {
  readonly train: Dataset;
  readonly hidden: Dataset;
  /** The classifier's labels for H (its own accuracy) and the held-out NN distances to T. */
  readonly hiddenNearest: number[];
  readonly predict: (images: Float32Array, n: number) => Promise<Int32Array>;
}

interface Shared {
  readonly splits: Record<string, Split>;
  readonly classifierAccuracy: Record<string, number>;
}

const list = (text: string) => text.split(",").map((s) => s.trim()).filter((s) => s);
const HELD_OUT = "held-out";
const TRAINED_FLOW = "trained-flow";

export function resolveGeneratorsConfig(raw: Record<string, unknown>): GeneratorsConfig {
  const top = [...TOP_KEYS, "compare", "generators", "flow"];
  for (const key of Object.keys(raw)) {
    if (!top.includes(key)) throw keyError(key, `unknown key${suggestion(key, top)}`);
  }
  const compare = resolveSection(GENERATORS_SECTION, raw.compare, "compare.");
  for (const name of list(compare.datasets)) {
    if (!(DATASETS as readonly string[]).includes(name)) {
      throw keyError("compare.datasets", `unknown data set "${name}"${suggestion(name, DATASETS)}`);
    }
  }
  const generators = resolveGenerators(
    raw.generators ?? { ode: { generator: "closed-form", params: { sampler: "ode" } } },
    true,
  );
  if (HELD_OUT in generators) throw keyError(`generators.${HELD_OUT}`, "is the null's name");
  const flow = raw.flow === undefined || raw.flow === null
    ? null
    : resolveFlowSpec(raw.flow, "flow.");
  if (flow && TRAINED_FLOW in generators) {
    throw keyError(`generators.${TRAINED_FLOW}`, "is the flow row's name (set by the flow key)");
  }
  const out = (raw.out ?? {}) as Record<string, unknown>;
  if (typeof out.dir !== "string" || !out.dir) throw keyError("out.dir", "no output directory");
  return {
    seed: typeof raw.seed === "number" ? raw.seed : 0,
    description: typeof raw.description === "string" ? raw.description : "",
    data: resolveSection(DATA_SECTION, raw.data, "data."),
    compare,
    generators,
    flow,
    out: { dir: out.dir },
  };
}

/** Nearest-neighbour distances of each image to the training set. */
function nearestDistances(images: Float32Array, train: Dataset): number[] {
  return Array.from(kNearest(images, train.images, imageSize(train.shape), 1).distance);
}

/** E |m~(beta h + sigma z) - h|^2 / d over the first `count` images of H. */
async function denoiseError(
  entry: GeneratorEntry,
  train: Dataset,
  hidden: Dataset,
  t: number,
  count: number,
  seed: number,
): Promise<number | null> {
  const stage = generatorStage(entry.stage);
  if (!stage.denoiser) return null;
  const probe = stage.denoiser(entry.params, { seed, train, report: () => {} });
  const d = imageSize(train.shape);
  const n = Math.min(count, hidden.shape[0]);
  const { beta, sigma2 } = probe.coefficients(t);
  const sigma = Math.sqrt(sigma2);
  const x = new Float64Array(n * d);
  for (let q = 0; q < n; q++) {
    const rng = new Rng(seed, "generators-denoise", q);
    for (let j = 0; j < d; j++) {
      x[q * d + j] = beta * hidden.images[q * d + j] + sigma * rng.normal();
    }
  }
  const m = await probe.denoise(t, x, hidden.labels.slice(0, n));
  let error = 0;
  for (let j = 0; j < n * d; j++) error += (m[j] - hidden.images[j]) ** 2;
  return error / (n * d);
}

/** side x side samples as one grey PNG (1-pixel gaps), first channel, clipped to [0, 1]. */
function sampleGrid(images: Float32Array, shape: readonly number[], side: number) {
  const [, h, w, c] = shape;
  const width = side * (w + 1) + 1;
  const height = side * (h + 1) + 1;
  const data = new Uint8Array(width * height * 3).fill(96);
  const n = Math.min(side * side, images.length / (h * w * c));
  for (let q = 0; q < n; q++) {
    const [gy, gx] = [Math.floor(q / side), q % side];
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) {
        const v = images[((q * h + i) * w + j) * c];
        const k = ((gy * (h + 1) + 1 + i) * width + gx * (w + 1) + 1 + j) * 3;
        data.fill(Math.round(255 * Math.min(1, Math.max(0, v))), k, k + 3);
      }
    }
  }
  return encodePng({ width, height, data });
}

export const generators = defineExperiment<GeneratorsConfig, Shared, GeneratorsCell>({
  name: "generators",
  summary: "which generators create and which memorize: copy rate, Z, held-out denoising, cost",
  unit: "[generators] cells",
  describe: () => [
    ...describeSection(GENERATORS_SECTION, "compare."),
    "  generators.<label>.generator, .params  one row per entry: a stage or module and its params",
  ],
  resolve: resolveGeneratorsConfig,
  fields(raw) {
    const fields = commonFields();
    for (const [k, f] of Object.entries(GENERATORS_SECTION)) fields[`compare.${k}`] = f;
    return {
      ...fields,
      ...flowSpecFields("flow."),
      ...labelledGeneratorFields(raw.generators, {}),
    };
  },
  outDir: (config) => config.out.dir,
  grid: (config) =>
    product({
      dataset: list(config.compare.datasets),
      generator: [
        HELD_OUT,
        ...Object.keys(config.generators),
        ...(config.flow ? [TRAINED_FLOW] : []),
      ],
    }),
  identity(config, key) {
    const { datasets: _, gridSide: __, ...compare } = config.compare;
    const label = String(key.generator);
    return {
      seed: config.seed,
      data: config.data,
      compare,
      generator: label === HELD_OUT ? null : config.generators[label],
      flow: label === TRAINED_FLOW ? config.flow : undefined,
    };
  },
  cost: () => 1,
  async prepare(config, log) {
    const splits: Record<string, Split> = {};
    const classifierAccuracy: Record<string, number> = {};
    const c = config.compare;
    for (const dataset of list(c.datasets)) {
      const { train: all, test } = await loadData(
        { ...config.data, source: dataset },
        log,
        "generators",
        false,
      );
      const train = subset(all, c.train, true, config.seed);
      const hidden = subset(test, Math.min(c.hidden, test.shape[0]), false, config.seed);
      const [, h, w, ch] = train.shape;
      const model = await classifier({
        input: [h, w, ch],
        classes: Math.max(...train.labels) + 1,
        batch: 32,
        optimizer: { kind: "adam", beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 },
        seed: config.seed,
        hidden: 64,
        widths: [8, 16, 32],
      });
      const d = imageSize(train.shape);
      const x = new Float32Array(32 * d);
      const y = new Int32Array(32);
      for (let step = 0; step < c.classifierSteps; step++) {
        const rng = new Rng(config.seed, "generators-classifier", step);
        for (let j = 0; j < 32; j++) {
          const i = rng.int(train.shape[0]);
          x.set(train.images.subarray(i * d, (i + 1) * d), j * d);
          y[j] = train.labels[i];
        }
        // Decayed to 0, as Tables 1/2's: batch norm's running statistics fit the final weights.
        await model.step(
          shiftImages(x, [32, h, w, ch], c.classifierShift, config.seed, step),
          y,
          cosineWithWarmup(step, { base: 0.01, warmup: 0, total: c.classifierSteps }),
        );
      }
      const predicted = await model.predict(hidden.images, hidden.shape[0]);
      classifierAccuracy[dataset] = predicted.filter((p, i) => p === hidden.labels[i]).length /
        hidden.shape[0];
      log(
        `[sia] generators: ${dataset}: T ${train.shape[0]}, H ${hidden.shape[0]}, classifier ` +
          `accuracy on H ${(100 * classifierAccuracy[dataset]).toFixed(1)} %`,
      );
      splits[dataset] = {
        train,
        hidden,
        hiddenNearest: nearestDistances(hidden.images, train),
        predict: (images, n) => model.predict(images, n),
      };
    }
    return { splits, classifierAccuracy };
  },
  async run(config, key, context) {
    const c = config.compare;
    const dataset = String(key.dataset);
    const label = String(key.generator);
    const { train, hidden, hiddenNearest, predict } = context.shared.splits[dataset];
    const d = imageSize(train.shape);
    const facts: Record<string, unknown> = {};
    const t0 = performance.now();
    let images: Float32Array;
    let labels: Int32Array;
    let denoise: number | null = null;
    if (label === HELD_OUT) {
      const n = Math.min(c.samples, hidden.shape[0]);
      images = hidden.images.slice(0, n * d);
      labels = hidden.labels.slice(0, n);
    } else if (label === TRAINED_FLOW) {
      const spec = config.flow!;
      const { model, sha256 } = await trainedFlow({
        spec,
        seed: config.seed,
        data: { train, test: null },
        dataConfig: { ...config.data, source: dataset },
        identity: {
          data: config.data,
          dataset,
          seed: config.seed,
          train: c.train,
          flow: spec.train,
        },
        outDir: config.out.dir,
        what: `the ${dataset} flow on T (${train.shape[0]} images)`,
      }, context);
      facts.precomputeSeconds = (performance.now() - t0) / 1000;
      const where = `flow.sample`;
      const params = flowSampleParams(spec, model, where);
      const pool = await makePool("onnx-flow", params, train, c.samples, config.seed, where, (
        f,
      ) => Object.assign(facts, f));
      // After the pool's own facts (which name the model by path): the model by content.
      facts.modelSha256 = sha256;
      images = pool.images;
      labels = pool.labels;
    } else {
      const entry = config.generators[label];
      const where = `generators.${label}`;
      const pool = await makePool(entry.stage, entry.params, train, c.samples, config.seed, where, (
        f,
      ) => Object.assign(facts, f));
      images = pool.images;
      labels = pool.labels;
    }
    const seconds = (performance.now() - t0) / 1000;
    if (label !== HELD_OUT && label !== TRAINED_FLOW) {
      const entry = config.generators[label];
      denoise = await denoiseError(entry, train, hidden, c.denoiseT, c.denoiseImages, config.seed);
    }
    const n = images.length / d;
    const { memorizedFraction, meanNearestDistance } = closeness(images, train);
    const z = mannWhitneyZ(nearestDistances(images, train), hiddenNearest);
    const predicted = await predict(images, n);
    const fidelity = labels.every((l) => l >= 0)
      ? predicted.filter((p, i) => p === labels[i]).length / n
      : null;
    const [, h, w, ch] = train.shape;
    const png = await sampleGrid(images, [n, h, w, ch], c.gridSide);
    await Deno.mkdir(`${config.out.dir}/grids`, { recursive: true });
    await atomicWrite(`${config.out.dir}/grids/${cellFileName(key)}.png`, png);
    return {
      samples: n,
      copyRate: memorizedFraction,
      z,
      denoiseError: denoise,
      nearest: meanNearestDistance,
      fidelity,
      seconds,
      facts,
    };
  },
  describeResult: (r) =>
    `copy ${(100 * r.copyRate).toFixed(1)} %, Z ${r.z.toFixed(2)}, fidelity ${
      r.fidelity === null ? "n/a" : `${(100 * r.fidelity).toFixed(1)} %`
    }`,
  async report(config, cells, shared, dir) {
    const header = [
      "data set",
      "generator",
      "stage",
      "copy rate %",
      "Z",
      `denoising error (t = ${config.compare.denoiseT})`,
      "NN distance",
      "class fidelity %",
      "P / M",
      "seconds",
      "NFE",
      "precompute s",
    ];
    const rows = cells.map(({ key, result: r }) => {
      const label = String(key.generator);
      const entry = config.generators[label];
      const nfe = r.facts.nfePerSample;
      const pre = r.facts.precomputeSeconds;
      return [
        String(key.dataset),
        label === HELD_OUT ? "held-out real (null)" : label,
        entry ? entry.stage : label === TRAINED_FLOW ? "onnx-flow" : "-",
        fixed(100 * r.copyRate, 1),
        fixed(r.z, 2),
        fixed(r.denoiseError ?? undefined, 4),
        fixed(r.nearest, 3),
        fixed(r.fidelity === null ? undefined : 100 * r.fidelity, 1),
        entry ? String(r.facts.p ?? entry.params.p ?? entry.params.draws ?? "-") : "-",
        fixed(r.seconds, 1),
        typeof nfe === "number" ? nfe : "-",
        typeof pre === "number" ? fixed(pre, 1) : "-",
      ];
    });
    const c = config.compare;
    const accuracy = Object.entries(shared.classifierAccuracy)
      .map(([k, v]) => `${k} ${(100 * v).toFixed(1)} %`).join(", ");
    const d = imageSize(Object.values(shared.splits)[0].train.shape);
    const note =
      `${config.description || "Generators compared"}: T = N = ${c.train} class-balanced ` +
      `training images, H = ${c.hidden} held-out test images (never read by a generator), ` +
      `${c.samples} class-conditional samples per generator; copy rate = NN1 / NN2 < 1/3 ` +
      `against T; Z = Mann-Whitney z of the samples' NN distances to T against H's (negative: ` +
      `closer than fresh data); denoising error = mean squared error per pixel of m~(beta h + ` +
      `sigma z) against h over ${c.denoiseImages} images of H; class fidelity = share labelled ` +
      `with their class by a small CNN trained on T (${c.classifierSteps} steps, shifts up to ` +
      `${c.classifierShift} px; accuracy on H: ` +
      `${accuracy}); d = ${d}; P / M = the kernel's features or fields, the smoothing's draws; ` +
      `seconds = wall time of making the samples on this machine, precompute included; sample grids in grids/.`;
    const md = ["# Generators compared", "", note, "", markdownTable(header, rows), ""].join("\n");
    await writeTables(dir, "generators", {
      md,
      csv: csvTable(header, rows),
      json: { note, classifierAccuracy: shared.classifierAccuracy, cells },
    });
    return md;
  },
});
