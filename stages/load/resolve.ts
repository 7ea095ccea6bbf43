// From what a user types after --data (a name or a path) to train and test sets.

import { SiaError } from "../../core/errors.ts";
import { loadCifar } from "./cifar.ts";
import { splitStratified } from "./dataset.ts";
import type { Dataset, Splits } from "./dataset.ts";
import { listDir, readBytes, statOrNull } from "./files.ts";
import { idxLabelsName, loadIdx } from "./idx.ts";
import { loadEmbeddedMnist } from "./mnist.ts";
import { loadNpy, npyLabelsCandidates } from "./npy.ts";

/** Where Debian's dataset-fashion-mnist puts the gzipped IDX files. */
export const FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";
export const DATA_NAMES = ["mnist", "fashion-mnist"] as const;

export interface LoadOptions {
  /** Fraction held out per class when the source has no test split of its own. */
  readonly testFraction: number;
  readonly splitSeed: number;
  /** Explicit labels file for a single images file ("" = look for a sibling). */
  readonly labels: string;
}

/** Loads `source` and splits it: the source's own train/test split, or a seeded stratified one. */
export async function loadSplits(source: string, options: LoadOptions): Promise<Splits> {
  if (source === "mnist") return split(loadEmbeddedMnist(), options);
  const path = source === "fashion-mnist" ? FASHION_MNIST_DIR : source;
  const info = await statOrNull(path);
  if (!info) {
    if (source === "fashion-mnist") {
      throw new SiaError(`${path}: not found (install the Debian package dataset-fashion-mnist)`);
    }
    const hint = /^[a-z-]+$/.test(source)
      ? ` (not a data set name either: ${DATA_NAMES.join(", ")})`
      : "";
    throw new SiaError(`${path}: no such file or directory${hint}`);
  }
  return info.isDirectory ? loadDirectory(path, options) : loadFile(path, options);
}

function split(ds: Dataset, options: LoadOptions): Splits {
  if (options.testFraction === 0) {
    return { train: ds, test: null, splitNote: "all images train, no test split" };
  }
  const [train, test] = splitStratified(ds, options.testFraction, options.splitSeed);
  return {
    train,
    test,
    splitNote:
      `seeded stratified split: ${options.testFraction} of each class held out (splitSeed ${options.splitSeed})`,
  };
}

/** A name with and without ".gz": labels may be compressed when the images are not, or the reverse. */
function gzVariants(name: string): string[] {
  return name.endsWith(".gz") ? [name, name.slice(0, -3)] : [name, `${name}.gz`];
}

async function firstExisting(candidates: string[]): Promise<string | null> {
  for (const c of candidates) if (await statOrNull(c)) return c;
  return null;
}

async function loadFile(path: string, options: LoadOptions): Promise<Splits> {
  const explicitLabels = options.labels || null;
  if (path.endsWith(".npy")) {
    const labels = explicitLabels ?? await firstExisting(npyLabelsCandidates(path));
    return split(await loadNpy(path, labels), options);
  }
  if (path.endsWith(".bin")) return split(await loadCifar([path]), options);
  // Anything else must be IDX, gzipped or not; the parser names the problem if it is not.
  const bytes = await readBytes(path);
  if (bytes.length >= 4 && bytes[0] === 0 && bytes[1] === 0 && bytes[3] === 1) {
    throw new SiaError(`${path}: is an IDX labels file; pass the images file`);
  }
  const slash = path.lastIndexOf("/");
  const labelsName = idxLabelsName(path.slice(slash + 1));
  const labels = explicitLabels ??
    (labelsName ? await firstExisting(gzVariants(path.slice(0, slash + 1) + labelsName)) : null);
  return split(await loadIdx(path, labels), options);
}

async function loadDirectory(dir: string, options: LoadOptions): Promise<Splits> {
  const names = await listDir(dir);
  const at = (name: string) => `${dir.replace(/\/$/, "")}/${name}`;
  const idx = (prefix: string) => names.find((n) => n.startsWith(`${prefix}-images-idx3-ubyte`));
  const trainIdx = idx("train");
  if (trainIdx) {
    const testIdx = idx("t10k");
    const withLabels = (name: string) => {
      const labelsName = idxLabelsName(name);
      const labels = labelsName ? gzVariants(labelsName).find((n) => names.includes(n)) : undefined;
      return loadIdx(at(name), labels ? at(labels) : null);
    };
    return {
      train: await withLabels(trainIdx),
      test: testIdx ? await withLabels(testIdx) : null,
      splitNote: testIdx
        ? "the source's own train and t10k files"
        : "train file only, no test split",
    };
  }
  const batchNumber = (n: string) => Number(/\d+/.exec(n)![0]);
  const batches = names.filter((n) => /^data_batch_\d+\.bin$/.test(n))
    .sort((a, b) => batchNumber(a) - batchNumber(b));
  if (batches.length) {
    const hasTest = names.includes("test_batch.bin");
    return {
      train: await loadCifar(batches.map(at)),
      test: hasTest ? await loadCifar([at("test_batch.bin")]) : null,
      splitNote: hasTest
        ? "the source's own data_batch_* and test_batch files"
        : "data_batch_* only, no test split",
    };
  }
  const shards = names.filter((n) => /^images.*\.npy$/.test(n) && !n.endsWith(".labels.npy"));
  if (shards.length === 1) return loadFile(at(shards[0]), options);
  throw new SiaError(
    `${dir}: no data found (expected train-images-idx3-ubyte[.gz], CIFAR-10 data_batch_*.bin, or one images*.npy)`,
  );
}
