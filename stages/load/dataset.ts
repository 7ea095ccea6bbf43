// An in-memory labelled image set (the real data: bounded by the data set's size, never by the
// length of a generated stream), and the seeded operations every loader shares: validation, the
// train/test split and class-balanced subsets.

import { Rng } from "../../core/rng.ts";
import type { Dataset, Shape } from "../../core/batch.ts";
import { imageSize } from "../../core/batch.ts";
import { fileError, SiaError } from "../../core/errors.ts";

export type { Dataset, Splits } from "../../core/batch.ts";

/** Builds a dataset after checking the arrays agree and every pixel is finite. */
export function makeDataset(
  source: string,
  images: Float32Array,
  shape: Shape,
  labels: Int32Array | null,
  ids?: Int32Array,
): Dataset {
  const n = shape[0];
  if (images.length !== n * imageSize(shape)) {
    throw fileError(source, `${images.length} values do not fill shape [${shape}]`);
  }
  if (labels && labels.length !== n) {
    throw fileError(source, `${labels.length} labels for ${n} images`);
  }
  for (let i = 0; i < images.length; i++) {
    const v = images[i];
    if (!Number.isFinite(v)) {
      const image = Math.floor(i / imageSize(shape));
      throw fileError(source, `image ${image} has a non-finite pixel (${v} at value index ${i})`);
    }
  }
  return {
    source,
    images,
    shape,
    labels: labels ?? new Int32Array(n).fill(-1),
    ids: ids ?? Int32Array.from({ length: n }, (_, i) => i),
  };
}

/** The images at the given positions, in that order. */
export function take(ds: Dataset, positions: ArrayLike<number>): Dataset {
  const size = imageSize(ds.shape);
  const n = positions.length;
  const images = new Float32Array(n * size);
  const labels = new Int32Array(n);
  const ids = new Int32Array(n);
  for (let j = 0; j < n; j++) {
    const i = positions[j];
    images.set(ds.images.subarray(i * size, (i + 1) * size), j * size);
    labels[j] = ds.labels[i];
    ids[j] = ds.ids[i];
  }
  return {
    source: ds.source,
    images,
    shape: [n, ds.shape[1], ds.shape[2], ds.shape[3]],
    labels,
    ids,
  };
}

/** Positions of each label, in index order; unlabeled images form the group -1. */
export function groupByLabel(labels: Int32Array): Map<number, number[]> {
  const groups = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const g = groups.get(labels[i]);
    if (g) g.push(i);
    else groups.set(labels[i], [i]);
  }
  return new Map([...groups.entries()].sort((a, b) => a[0] - b[0]));
}

/** groupByLabel when `conditional`, else every position as one group 0 (one field for all). */
export function classGroups(labels: Int32Array, conditional: boolean): Map<number, number[]> {
  return conditional ? groupByLabel(labels) : new Map([[0, [...Array(labels.length).keys()]]]);
}

/** Seeded stratified split: each class sends round(count * testFraction) images to test. */
export function splitStratified(
  ds: Dataset,
  testFraction: number,
  seed: number,
): [Dataset, Dataset] {
  const train: number[] = [];
  const test: number[] = [];
  for (const [label, positions] of groupByLabel(ds.labels)) {
    const perm = new Rng(seed, "split", label).permutation(positions.length);
    const nTest = Math.round(positions.length * testFraction);
    perm.forEach((p, j) => (j < nTest ? test : train).push(positions[p]));
  }
  const byIndex = (a: number, b: number) => a - b;
  return [take(ds, train.sort(byIndex)), take(ds, test.sort(byIndex))];
}

/**
 * Seeded subset of `size` images (0 = all). Balanced: every class gets floor(size / classes)
 * images and the first size mod classes classes one more, so sizes 100 to 10,000 give the
 * paper's per-class counts exactly.
 */
export function subset(ds: Dataset, size: number, balanced: boolean, seed: number): Dataset {
  const n = ds.shape[0];
  if (size === 0 || (size === n && !balanced)) return ds;
  if (size > n) {
    throw new SiaError(`data.size: ${size} images asked, ${ds.source} has ${n}`);
  }
  if (!balanced) {
    const perm = new Rng(seed, "subset").permutation(n);
    return take(ds, Array.from(perm.subarray(0, size)).sort((a, b) => a - b));
  }
  const groups = [...groupByLabel(ds.labels).entries()].filter(([label]) => label >= 0);
  if (groups.length === 0) {
    throw new SiaError(`data.balanced: ${ds.source} has no labels to balance over`);
  }
  const chosen: number[] = [];
  groups.forEach(([label, positions], k) => {
    const want = Math.floor(size / groups.length) + (k < size % groups.length ? 1 : 0);
    if (want > positions.length) {
      throw new SiaError(
        `data.size: a balanced subset of ${size} needs ${want} images of class ${label}, ` +
          `${ds.source} has ${positions.length}`,
      );
    }
    const perm = new Rng(seed, "subset", label).permutation(positions.length);
    for (let j = 0; j < want; j++) chosen.push(positions[perm[j]]);
  });
  return take(ds, chosen.sort((a, b) => a - b));
}

/** Per-class image counts, labels ascending (-1 = unlabeled). */
export function classCounts(labels: Int32Array): Map<number, number> {
  const counts = new Map<number, number>();
  for (const l of labels) counts.set(l, (counts.get(l) ?? 0) + 1);
  return new Map([...counts.entries()].sort((a, b) => a[0] - b[0]));
}
