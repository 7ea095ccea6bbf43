// The summary sink: what was generated (counts per class and per provenance) and how close it is
// to the training set (mean nearest-neighbour distance, memorized fraction by the ratio test of
// Yoon et al. 2023), beside the same figures for held-out real images, the null that says what
// "close" means for fresh samples of the same data. Printed and written as Markdown.

import { tap } from "rxjs";
import { kNearest } from "../../core/nearest.ts";
import { imageSize } from "../../core/batch.ts";
import type { Batch, Dataset } from "../../core/batch.ts";
import { atomicWriteText } from "../../core/files.ts";
import type { Sink } from "../../core/stage.ts";
import type { Tally } from "../../core/tally.ts";

/** nearest / second nearest below this: memorized (appendix A.2 of the seed paper). */
export const MEMORIZATION_RATIO = 1 / 3;

export interface Closeness {
  readonly images: number;
  readonly meanNearestDistance: number;
  readonly memorizedFraction: number;
}

/** Nearest-neighbour distance and memorized fraction of `images` against the training set. */
export function closeness(images: Float32Array, train: Dataset): Closeness {
  const d = imageSize(train.shape);
  const n = images.length / d;
  if (n === 0 || train.shape[0] < 2) {
    return { images: n, meanNearestDistance: NaN, memorizedFraction: NaN };
  }
  const { distance } = kNearest(images, train.images, d, 2);
  let sum = 0;
  let memorized = 0;
  for (let q = 0; q < n; q++) {
    sum += distance[2 * q];
    if (distance[2 * q] < MEMORIZATION_RATIO * distance[2 * q + 1]) memorized++;
  }
  return { images: n, meanNearestDistance: sum / n, memorizedFraction: memorized / n };
}

export interface SummaryOptions {
  readonly dir: string;
  /** How many of the stream's first images enter the distance figures (0 = none). */
  readonly nnSample: number;
  readonly train: Dataset;
  readonly test: Dataset | null;
  /** The run's counts, read when the run finishes. */
  readonly tally: Tally;
  /** Printed lines go here (stdout in the CLI). */
  readonly print: (text: string) => void;
}

export function summarySink(options: SummaryOptions): Sink {
  const { train, test, nnSample, tally } = options;
  const d = imageSize(train.shape);
  const sample = new Float32Array(nnSample * d);
  let sampled = 0;

  function keep(batch: Batch): void {
    const n = batch.shape[0];
    const take = Math.min(n, nnSample - sampled);
    if (take > 0) {
      sample.set(batch.images.subarray(0, take * d), sampled * d);
      sampled += take;
    }
  }

  return {
    name: "summary",
    operator: tap(keep),
    async finish(interrupted) {
      const produced = closeness(sample.subarray(0, sampled * d), train);
      const held = test && nnSample > 0
        ? closeness(test.images.subarray(0, Math.min(nnSample, test.shape[0]) * d), train)
        : null;
      const classes = tally.classes();
      const fmt = (x: number, digits: number) => Number.isNaN(x) ? "n/a" : x.toFixed(digits);
      const pct = (x: number) => Number.isNaN(x) ? "n/a" : `${(100 * x).toFixed(1)} %`;
      const origins = [...tally.perOrigin.keys()].join(", ") || "nothing";
      const lines = [
        `# sia run summary${interrupted ? " (interrupted)" : ""}`,
        "",
        `Training set: ${
          train.shape[0]
        } images from ${train.source}; produced ${tally.total}: ${origins}.`,
        "",
        `| | produced | held-out real (null) |`,
        `|---|---|---|`,
        `| images compared | ${produced.images} | ${held ? held.images : "n/a"} |`,
        `| mean distance to nearest training image | ${fmt(produced.meanNearestDistance, 4)} | ${
          held ? fmt(held.meanNearestDistance, 4) : "n/a"
        } |`,
        `| memorized (nearest / second nearest < 1/3) | ${pct(produced.memorizedFraction)} | ${
          held ? pct(held.memorizedFraction) : "n/a"
        } |`,
        "",
        `| class | ${
          classes.map(([c]) => (c < 0 ? "unlabeled" : String(c))).join(" | ")
        } | total |`,
        `|---|${classes.map(() => "---|").join("")}---|`,
        `| images | ${classes.map(([, n]) => String(n)).join(" | ")} | ${tally.total} |`,
        "",
      ];
      const text = lines.join("\n");
      await atomicWriteText(`${options.dir}/summary.md`, text);
      options.print(text);
      return { produced, heldOut: held };
    },
  };
}
