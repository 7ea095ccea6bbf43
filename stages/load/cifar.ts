// CIFAR-10 binary batches: records of 1 label byte then 3072 pixel bytes, channel-major
// (1024 red, 1024 green, 1024 blue, each row-major 32x32). sia's batches are NHWC.

import { fileError } from "../../core/errors.ts";
import { makeDataset } from "./dataset.ts";
import type { Dataset } from "./dataset.ts";
import { readBytes } from "./files.ts";

export const CIFAR_RECORD = 3073;
const SIDE = 32;
const PLANE = SIDE * SIDE;

export function parseCifar(
  path: string,
  bytes: Uint8Array,
): { images: Float32Array; labels: Int32Array } {
  if (bytes.length === 0 || bytes.length % CIFAR_RECORD !== 0) {
    throw fileError(
      path,
      `size ${bytes.length} is not a positive multiple of ${CIFAR_RECORD} (one CIFAR-10 record)`,
    );
  }
  const n = bytes.length / CIFAR_RECORD;
  const images = new Float32Array(n * 3 * PLANE);
  const labels = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    const base = r * CIFAR_RECORD;
    const label = bytes[base];
    if (label > 9) {
      throw fileError(path, `record ${r} has label ${label}, CIFAR-10 labels are 0 to 9`);
    }
    labels[r] = label;
    const out = r * 3 * PLANE;
    for (let p = 0; p < PLANE; p++) {
      for (let c = 0; c < 3; c++) images[out + p * 3 + c] = bytes[base + 1 + c * PLANE + p] / 255;
    }
  }
  return { images, labels };
}

/** One or more batch files, concatenated in the given order. */
export async function loadCifar(paths: string[]): Promise<Dataset> {
  const parts = [];
  for (const path of paths) parts.push(parseCifar(path, await readBytes(path)));
  const n = parts.reduce((s, p) => s + p.labels.length, 0);
  const images = new Float32Array(n * 3 * PLANE);
  const labels = new Int32Array(n);
  let offset = 0;
  for (const part of parts) {
    images.set(part.images, offset * 3 * PLANE);
    labels.set(part.labels, offset);
    offset += part.labels.length;
  }
  return makeDataset(
    paths.length === 1 ? paths[0] : paths.join(","),
    images,
    [n, SIDE, SIDE, 3],
    labels,
  );
}
