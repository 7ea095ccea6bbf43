// The Table 3 runner: for each learner, each arm and each seed, train the encoder for a fixed
// step budget on views of the arm's data and probe it on the real test split.
//   baseline          strong views of real images only
//   generated:<name>  weak views of real images (replicated dup times) + the generator's pool
//   noised            weak views of real images (replicated dup times) + a noise-perturbed pool
// plus a random-init row per seed (the floor every arm must beat). Each cell is saved when it
// finishes, so a long run is useful before it ends and an interrupted one resumes where it was.

import { filter, from, lastValueFrom, NEVER, takeUntil, tap, toArray } from "rxjs";
import { augmentViews } from "../../stages/augment/contrastive.ts";
import { PRESET_NAMES, PRESETS } from "../../stages/augment/recipes.ts";
import type { PresetName } from "../../stages/augment/recipes.ts";
import { initParams } from "../../stages/learn/blocks/init.ts";
import { paramSpecs, resnet18Cifar, smallCnn } from "../../stages/learn/blocks/model.ts";
import { cosineWithWarmup } from "../../stages/learn/graph/schedules.ts";
import type { Learner, LearnerOptions } from "../../stages/learn/learner.ts";
import { moco } from "../../stages/learn/moco.ts";
import { learnStage } from "../../stages/learn/stage.ts";
import { probeEncoder, probeSink } from "../../stages/sink/probe.ts";
import type { ProbeEvent, ProbeSinkOptions } from "../../stages/sink/probe.ts";
import { simclr } from "../../stages/learn/simclr.ts";
import { simsiam } from "../../stages/learn/simsiam.ts";
import { swav } from "../../stages/learn/swav.ts";
import { subset } from "../../stages/load/dataset.ts";
import { loadSplits } from "../../stages/load/resolve.ts";
import { anchorBatches } from "../../stages/load/source.ts";
import type { Batch, Dataset } from "../../core/batch.ts";
import { imageSize, makeBatch } from "../../core/batch.ts";
import { DATA_SECTION, generatorStage } from "../config.ts";
import { keyError, SiaError } from "../../core/errors.ts";
import { checkWritableDir } from "../../core/files.ts";
import { Credits, paced } from "../flow.ts";
import { Progress } from "../progress.ts";
import type { ProgressOptions } from "../progress.ts";
import { describeSection, resolveSection, suggestion } from "../../core/schema.ts";
import type { Resolved, Section } from "../../core/schema.ts";
import { drawBatch, realShare } from "./mix.ts";
import type { Pool } from "./mix.ts";
import { aggregate, loadCell, saveCell, writeChart, writeTables } from "./results.ts";
import type { Cell } from "./results.ts";

export const LEARNERS = ["simclr", "moco", "simsiam", "swav"] as const;

export const TABLE3_SECTION = {
  learners: {
    type: "string",
    default: LEARNERS.join(","),
    doc: `comma list of ${LEARNERS.join(", ")}`,
  },
  seeds: { type: "string", default: "0", doc: "comma list of seeds; each cell runs once per seed" },
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

const TOP = ["experiment", "seed", "description", "data", "table3", "generators", "noise", "out"];

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function resolveTable3Config(raw: Record<string, unknown>): Table3Config {
  for (const key of Object.keys(raw)) {
    if (!TOP.includes(key)) throw keyError(key, `unknown key${suggestion(key, TOP)}`);
  }
  const table3 = resolveSection(TABLE3_SECTION, raw.table3, "table3.");
  for (const name of table3.learners.split(",")) {
    if (!(LEARNERS as readonly string[]).includes(name)) {
      throw keyError("table3.learners", `unknown learner "${name}"${suggestion(name, LEARNERS)}`);
    }
  }
  const generatorsRaw = raw.generators ?? { "closed-form": { sampler: "sde", steps: 50 } };
  if (!isRecord(generatorsRaw)) {
    throw keyError("generators", "expected an object of generator name -> params");
  }
  const generators: Record<string, Resolved<Section>> = {};
  for (const [name, params] of Object.entries(generatorsRaw)) {
    generators[name] = resolveSection(generatorStage(name).params, params, `generators.${name}.`);
  }
  const out = isRecord(raw.out) ? raw.out : {};
  if (typeof out.dir !== "string" || !out.dir) {
    throw keyError("out.dir", "no output directory given");
  }
  const seed = typeof raw.seed === "number" ? raw.seed : 0;
  return {
    seed,
    description: typeof raw.description === "string" ? raw.description : "",
    data: resolveSection(DATA_SECTION, raw.data, "data."),
    table3,
    generators,
    noise: resolveSection(generatorStage("noise").params, raw.noise, "noise."),
    out: { dir: out.dir },
  };
}

export function describeTable3(): string[] {
  return describeSection(TABLE3_SECTION, "table3.");
}

/** `count` images from a generator stage, anchored on the training set: the arm's pool. */
async function makePool(
  name: string,
  params: Resolved<Section>,
  train: Dataset,
  count: number,
  seed: number,
): Promise<Batch> {
  const stage = generatorStage(name);
  const operator = stage.create(params, { seed, train, report: () => {} });
  const batches = await lastValueFrom(
    from(anchorBatches(train, count, 256, seed)).pipe(operator, toArray()),
  );
  const size = imageSize(train.shape);
  const images = new Float32Array(count * size);
  const ids = new Int32Array(count);
  const provenance = new Uint8Array(count);
  const generator: string[] = [];
  let offset = 0;
  for (const b of batches) {
    images.set(b.images, offset * size);
    ids.set(b.ids, offset);
    provenance.set(b.provenance, offset);
    generator.push(...b.generator);
    offset += b.shape[0];
  }
  const [, h, w, c] = train.shape;
  // Finite pixels only: a diverging sampler must fail loudly, not train on Infinity.
  if (!images.every(Number.isFinite)) {
    throw new SiaError(`generators.${name}: the pool has non-finite pixels`);
  }
  return makeBatch({
    images,
    shape: [count, h, w, c],
    labels: new Int32Array(count).fill(-1),
    ids,
    provenance,
    generator,
  });
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

export interface Table3Options {
  readonly log: (line: string) => void;
  readonly print: (text: string) => void;
  /** Progress over the training steps still to run (steps/s, ETA); none when absent. */
  readonly progress?: Pick<ProgressOptions, "tty" | "write" | "logEvery">;
  /** Resolves to stop as Ctrl-C does: the cell in training is dropped, finished cells stay. */
  readonly stop?: Promise<void>;
}

export async function runTable3(config: Table3Config, options: Table3Options): Promise<Cell[]> {
  const t = config.table3;
  const dir = config.out.dir.replace(/\/+$/, "");
  await checkWritableDir(dir);
  let splits;
  try {
    splits = await loadSplits(config.data.source, config.data);
  } catch (e) {
    if (!(e instanceof SiaError) || config.data.source !== "fashion-mnist") throw e;
    options.log(`[sia] WARNING: ${e.message}; falling back to the embedded MNIST`);
    splits = await loadSplits("mnist", config.data);
  }
  if (!splits.test) throw keyError("data.testFraction", "Table 3 needs a test split to probe on");
  const train = subset(splits.train, config.data.size, config.data.balanced, config.seed);
  const probeTrain = subset(train, Math.min(t.probeTrain, train.shape[0]), false, config.seed);
  const probeTest = subset(
    splits.test,
    Math.min(t.probeTest, splits.test.shape[0]),
    false,
    config.seed,
  );
  const input = train.shape.slice(1) as unknown as [number, number, number];
  const encoder = t.encoder === "smallcnn" ? smallCnn() : resnet18Cifar();
  options.log(
    `[sia] Table 3: ${train.shape[0]} training images [${input}] from ${train.source}; probes on ${
      probeTrain.shape[0]
    } / ${probeTest.shape[0]} real images; ${t.steps} steps of ${t.batch} images per cell`,
  );
  const learners = t.learners.split(",");
  const seeds = t.seeds.split(",").map(Number);
  const arms = [
    "baseline",
    ...Object.keys(config.generators).map((g) => `generated:${g}`),
    "noised",
  ];
  const cells: Cell[] = [];
  let pending = 0;
  for (const seed of seeds) {
    for (const learner of learners) {
      for (const arm of arms) if (!(await loadCell(dir, learner, arm, seed))) pending++;
    }
  }
  let stopped = false;
  options.stop?.then(() => (stopped = true));
  const interrupted = () =>
    new SiaError(
      `interrupted: ${cells.length} finished cells kept in ${dir}/cells; run the same command to resume`,
      130,
    );
  const progress = options.progress
    ? new Progress({ label: "[table3] steps", total: pending * t.steps, ...options.progress })
    : null;

  const probes: ProbeSinkOptions = { encoder, input, train: probeTrain, test: probeTest };

  async function cell(
    learner: string,
    arm: string,
    seed: number,
    run: () => Promise<Omit<Cell, "learner" | "arm" | "seed">>,
  ) {
    const done = await loadCell(dir, learner, arm, seed);
    if (done) {
      options.log(
        `[sia] ${learner} / ${arm} / seed ${seed}: done before (linear ${
          (100 * done.linear).toFixed(2)
        } %)`,
      );
      cells.push(done);
      return;
    }
    if (stopped) throw interrupted();
    const result: Cell = { learner, arm, seed, ...(await run()) };
    await saveCell(dir, result);
    cells.push(result);
    options.log(
      `[sia] ${learner} / ${arm} / seed ${seed}: linear ${
        (100 * result.linear).toFixed(2)
      } %, kNN ${(100 * result.knn).toFixed(2)} % (${result.testImages} test images, ${
        result.seconds.toFixed(0)
      } s)`,
    );
  }

  for (const seed of seeds) {
    await cell("random-init", "floor", seed, async () => {
      const t0 = performance.now();
      const [h, w, c] = input;
      const params = initParams(paramSpecs(encoder, [c, h, w]), seed);
      const { linear, knn, testImages } = await probeEncoder(params, probes);
      return {
        linear,
        knn,
        testImages,
        steps: 0,
        finalLoss: NaN,
        seconds: (performance.now() - t0) / 1000,
      };
    });
    const pools = new Map<string, Batch | null>([["baseline", null]]);
    const pool = async (arm: string) => {
      if (!pools.has(arm)) {
        const [kind, name] = arm.split(":");
        options.log(`[sia] making the ${arm} pool (${t.pool} images, seed ${seed})`);
        pools.set(
          arm,
          kind === "noised"
            ? await makePool("noise", config.noise, train, t.pool, seed)
            : await makePool(name, config.generators[name], train, t.pool, seed),
        );
      }
      return pools.get(arm)!;
    };
    for (const learner of learners) {
      for (const arm of arms) {
        await cell(learner, arm, seed, async () => {
          const t0 = performance.now();
          const mix: Pool = {
            real: train,
            extra: await pool(arm),
            dup: arm === "baseline" ? 1 : t.dup,
          };
          const preset: PresetName = arm === "baseline" ? t.strong : t.weak;
          const augment = augmentViews(PRESETS[preset], seed);
          const model = await learnerFor(learner, {
            encoder,
            input,
            batch: t.batch,
            optimizer: { kind: "sgd", momentum: 0.9, weightDecay: t.weightDecay },
            seed,
            dim: t.dim,
          }, t);
          // The cell as a pipeline: paced batches -> views -> learner -> probe sink; a batch
          // leaves the source only when an earlier one has finished its step (window 2).
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
                progress?.tick(1);
                loss = event.loss;
                if (event.step % 50 === 1 || event.step === t.steps) {
                  options.log(
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
              takeUntil(options.stop ?? NEVER),
            );
            const probe = await lastValueFrom(graph, { defaultValue: null });
            if (!probe) throw interrupted();
            const { linear, knn, testImages } = probe;
            return {
              linear,
              knn,
              testImages,
              steps: t.steps,
              finalLoss: loss,
              seconds: (performance.now() - t0) / 1000,
            };
          } finally {
            await model.release();
          }
        });
      }
    }
  }
  progress?.finish(`${pending} cells trained`);
  const rows = aggregate(cells, ["random-init", ...learners], ["floor", ...arms]);
  const poolShare = realShare(train.shape[0], t.pool, t.dup);
  const note =
    `${config.description || "Table 3"}: ${train.source}, ${
      train.shape[0]
    } training images, ${t.encoder}, ` +
    `${t.steps} steps x ${t.batch} images per cell, seeds ${t.seeds}; probes on ${
      probeTest.shape[0]
    } real test images ` +
    `(linear: ridge on frozen features; kNN: k 200, T 0.1). The mixed arms replicate the real images ${t.dup} ` +
    `times beside a pool of ${t.pool}, so ${
      (100 * (1 - poolShare)).toFixed(1)
    } % of their draws come from the pool (Wang et al.: about 67 %). The paper's column is CIFAR-10 with ResNet-18 at full scale, ` +
    `for reference only.`;
  await writeTables(dir, rows, note);
  await writeChart(dir, rows);
  options.print(await Deno.readTextFile(`${dir}/table3.md`));
  return cells;
}
