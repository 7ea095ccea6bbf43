// Builds and runs the graph a config describes:
//   anchors (real training images, paced) -> generator -> shard writer -> summary
// with backpressure from the end of the graph to the source, progress on stderr, and a clean stop
// on Ctrl-C: the subscription is dropped, finished shards and the buffered remainder are flushed,
// the manifest says the run was interrupted, and the caller exits 130.

import { identity, tap } from "rxjs";
import { anchorBatches } from "../stages/load/source.ts";
import { subset } from "../stages/load/dataset.ts";
import { loadSplits } from "../stages/load/resolve.ts";
import { npyShardSink, SHARD_PATTERN } from "../stages/sink/shards.ts";
import { summarySink } from "../stages/sink/summary.ts";
import type { Batch } from "../core/batch.ts";
import { augmentStage, generatorStage } from "./config.ts";
import type { PipelineConfig } from "./config.ts";
import { checkWritableDir, prepareOutDir } from "../core/files.ts";
import { Credits, paced } from "./flow.ts";
import { writeManifest } from "./manifest.ts";
import { Progress } from "./progress.ts";
import type { Sink } from "../core/stage.ts";
import { Tally } from "../core/tally.ts";

/** Batches in flight between the source and the end of the graph. */
const WINDOW = 2;

export interface RunOptions {
  /** The command line, for the manifest. */
  readonly command: string;
  /** Where the summary goes (stdout in the CLI). */
  readonly print: (text: string) => void;
  /** Where log lines go (stderr in the CLI). */
  readonly log: (line: string) => void;
  /** Resolves to stop the run as Ctrl-C does (tests); the CLI listens for SIGINT itself. */
  readonly stop?: Promise<void>;
  /** Progress display options (tests pass tty: false). */
  readonly progress?: { tty?: boolean; logEvery?: number };
}

export interface RunResult {
  readonly interrupted: boolean;
  readonly count: number;
  readonly dir: string;
}

/** Files a previous run left in the output directory; a new run replaces them. */
function isRunFile(name: string): boolean {
  return SHARD_PATTERN.test(name) || name === "manifest.json" || name === "summary.md";
}

export async function runPipeline(config: PipelineConfig, options: RunOptions): Promise<RunResult> {
  const started = new Date();
  const t0 = performance.now();
  const dir = config.out.dir.replace(/\/+$/, "") || "/";
  const stage = generatorStage(config.generate.generator);
  // Everything that can be wrong with the input is found before the output directory is touched.
  await checkWritableDir(dir);
  const splits = await loadSplits(config.data.source, config.data);
  const train = subset(splits.train, config.data.size, config.data.balanced, config.seed);
  const generatorReport: Record<string, unknown> = {};
  const generate = stage.create(config.generate.params, {
    seed: config.seed,
    train,
    report: (facts) => Object.assign(generatorReport, facts),
  });
  const augment = config.augment.stage
    ? augmentStage(config.augment.stage).create(config.augment.params, { seed: config.seed })
    : null;
  const loadSeconds = (performance.now() - t0) / 1000;
  options.log(
    `[sia] data: ${train.shape[0]} training images [${train.shape.slice(1)}] from ${train.source}` +
      ` (${splits.splitNote}); test: ${splits.test ? splits.test.shape[0] : "none"}`,
  );

  await prepareOutDir(dir, isRunFile);
  const tally = new Tally();
  // The tally, the summary's tap and the shard writer's queue all take a batch synchronously as
  // it arrives, so after Ctrl-C the counts, the summary and the shards agree.
  const sinks: Sink[] = [];
  if (config.out.summary) {
    sinks.push(
      summarySink({
        dir,
        nnSample: config.out.nnSample,
        train,
        test: splits.test,
        tally,
        print: options.print,
      }),
    );
  }
  sinks.push(npyShardSink(dir, config.out.shardSize));
  const progress = new Progress({
    label: `generate (${stage.name})`,
    // With augmentation every image leaves as `views` rows.
    total: config.generate.count * (augment ? Number(config.augment.params.views ?? 1) : 1),
    ...options.progress,
  });
  const credits = new Credits(WINDOW);
  const t1 = performance.now();

  const interrupted = await new Promise<boolean>((resolve, reject) => {
    let graph = paced(
      anchorBatches(train, config.generate.count, config.generate.batchSize, config.seed),
      credits,
    )
      .pipe(generate, augment ?? identity, tap((batch: Batch) => tally.add(batch)));
    for (const sink of sinks) graph = graph.pipe(sink.operator);
    const subscription = graph.pipe(tap((batch: Batch) => {
      progress.tick(batch.shape[0]);
      credits.give();
    })).subscribe({ complete: () => resolve(false), error: reject });
    options.stop?.then(() => {
      subscription.unsubscribe();
      resolve(true);
    });
  });
  progress.finish(interrupted ? "interrupted" : "done");
  const generateSeconds = (performance.now() - t1) / 1000;

  const reports: Record<string, unknown> = {};
  for (const sink of sinks) reports[sink.name] = await sink.finish(interrupted);
  const totalSeconds = (performance.now() - t0) / 1000;
  await writeManifest(dir, {
    command: options.command,
    interrupted,
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    seed: config.seed,
    config,
    data: {
      source: train.source,
      split: splits.splitNote,
      trainImages: train.shape[0],
      testImages: splits.test ? splits.test.shape[0] : 0,
      imageShape: train.shape.slice(1),
    },
    generator: { name: stage.name, provenance: stage.provenance, ...generatorReport },
    counts: tally.toJSON(),
    ...reports,
    timings: {
      loadSeconds,
      generateSeconds,
      totalSeconds,
      imagesPerSecond: tally.total / Math.max(generateSeconds, 1e-9),
    },
  });
  return { interrupted, count: tally.total, dir };
}
