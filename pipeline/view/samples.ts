// A sample set for the page: the first images of a shard directory's first shard, each with its
// nearest training image and the ratio nearest / second-nearest distance (below 1/3: memorized,
// the summary's rule). The training set is rebuilt from the manifest's config (source, size,
// balance, seed) exactly as the run built it, and kept for the next set that names the same one.
// Pixels travel as the shard's float32 bytes (base64), so the page draws the shard's own values.

import { imageSize } from "../../core/batch.ts";
import type { Dataset } from "../../core/batch.ts";
import { SiaError } from "../../core/errors.ts";
import { kNearest } from "../../core/nearest.ts";
import { decodeNpy, npyValues } from "../../core/npy.ts";
import { subset } from "../../stages/load/dataset.ts";
import { loadSplits } from "../../stages/load/resolve.ts";
import { MEMORIZATION_RATIO } from "../../stages/sink/summary.ts";
import { resolveConfig } from "../config.ts";

/** Samples shown per set (each with its neighbour): enough to see, cheap to search. */
export const SAMPLES_SHOWN = 32;

export interface SampleSet {
  readonly name: string;
  readonly generator: string;
  /** [h, w, c] of one image. */
  readonly shape: readonly number[];
  readonly count: number;
  /** float32 little-endian bytes of `count` images, base64. */
  readonly images: string;
  /** The nearest training image of each, same layout. */
  readonly nearest: string;
  /** Index of the nearest training image in the training set, per sample. */
  readonly nearestIndex: readonly number[];
  readonly distance: readonly number[];
  /** Nearest / second-nearest distance, per sample. */
  readonly ratio: readonly number[];
  readonly memorizedFraction: number;
  readonly meanNearestDistance: number;
  readonly trainImages: number;
  readonly ratioThreshold: number;
}

function base64(values: Float32Array): string {
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

/** Training sets by the manifest fields that make them; a few at most. */
const trains = new Map<string, Promise<Dataset>>();

function trainingSet(manifest: Record<string, unknown>, where: string): Promise<Dataset> {
  const raw = (manifest.config ?? {}) as Record<string, unknown>;
  let config;
  try {
    config = resolveConfig({ seed: raw.seed, data: raw.data, out: { dir: "-" } });
  } catch (e) {
    throw new SiaError(`${where}: the manifest's config is unusable (${(e as Error).message})`);
  }
  const id = JSON.stringify([config.data, config.seed]);
  let train = trains.get(id);
  if (!train) {
    train = loadSplits(config.data.source, config.data).then((splits) =>
      subset(splits.train, config.data.size, config.data.balanced, config.seed)
    );
    train.catch(() => trains.delete(id));
    trains.set(id, train);
    while (trains.size > 2) trains.delete(trains.keys().next().value!);
  }
  return train;
}

/** The set under `dir/name` (a shard directory the results view listed). */
export async function readSampleSet(dir: string, name: string): Promise<SampleSet> {
  const path = name === "." ? dir : `${dir}/${name}`;
  let manifest: Record<string, unknown>;
  try {
    manifest = JSON.parse(await Deno.readTextFile(`${path}/manifest.json`));
  } catch (e) {
    throw new SiaError(`${path}/manifest.json: unreadable (${(e as Error).message})`);
  }
  const shard = `${path}/images-00000.npy`;
  let values: Float32Array;
  let shape: number[];
  try {
    const array = decodeNpy(await Deno.readFile(shard));
    const all = npyValues(array);
    shape = array.shape.length === 3 ? [...array.shape, 1] : array.shape;
    values = all instanceof Float32Array ? all : Float32Array.from(all);
  } catch (e) {
    throw new SiaError(`${shard}: ${(e as Error).message}`);
  }
  if (shape.length !== 4) throw new SiaError(`${shard}: expected [n, h, w, c] images`);
  const train = await trainingSet(manifest, `${path}/manifest.json`);
  const d = imageSize(train.shape);
  if (shape[1] * shape[2] * shape[3] !== d) {
    throw new SiaError(
      `${shard}: images [${shape.slice(1)}] do not match the training set's [${
        train.shape.slice(1)
      }]`,
    );
  }
  const count = Math.min(SAMPLES_SHOWN, shape[0]);
  const images = values.slice(0, count * d);
  const { index, distance } = kNearest(images, train.images, d, 2);
  const nearest = new Float32Array(count * d);
  const nearestIndex: number[] = [];
  const nearestDistance: number[] = [];
  const ratio: number[] = [];
  let memorized = 0;
  for (let q = 0; q < count; q++) {
    const i = index[2 * q];
    nearest.set(train.images.subarray(i * d, (i + 1) * d), q * d);
    nearestIndex.push(i);
    nearestDistance.push(distance[2 * q]);
    ratio.push(distance[2 * q] / distance[2 * q + 1]);
    if (distance[2 * q] < MEMORIZATION_RATIO * distance[2 * q + 1]) memorized++;
  }
  const generator = (manifest.generator as { name?: string } | undefined)?.name ?? "?";
  return {
    name,
    generator,
    shape: shape.slice(1),
    count,
    images: base64(images),
    nearest: base64(nearest),
    nearestIndex,
    distance: nearestDistance,
    ratio,
    memorizedFraction: memorized / count,
    meanNearestDistance: nearestDistance.reduce((a, b) => a + b, 0) / count,
    trainImages: train.shape[0],
    ratioThreshold: MEMORIZATION_RATIO,
  };
}
