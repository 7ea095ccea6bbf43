// .npy images (uint8 0..255 or float32 on [0, 1], C order, [N, H, W] or [N, H, W, C]) with an
// optional labels file beside them.

import { decodeNpy, NpyError, npyValues } from "../../core/npy.ts";
import type { NpyArray } from "../../core/npy.ts";
import { fileError } from "../../core/errors.ts";
import { makeDataset } from "./dataset.ts";
import type { Dataset } from "./dataset.ts";
import { readBytes } from "./files.ts";

async function readNpy(path: string): Promise<NpyArray> {
  const bytes = await readBytes(path);
  try {
    return decodeNpy(bytes);
  } catch (e) {
    if (e instanceof NpyError) throw fileError(path, e.message);
    throw e;
  }
}

/**
 * The labels file that goes with an images file: `X.labels.npy` beside `X.npy`, or, for sia's own
 * shards, `labels-00000.npy` beside `images-00000.npy`.
 */
export function npyLabelsCandidates(imagesPath: string): string[] {
  const slash = imagesPath.lastIndexOf("/");
  const dir = imagesPath.slice(0, slash + 1);
  const base = imagesPath.slice(slash + 1);
  const out = [dir + base.replace(/\.npy$/, ".labels.npy")];
  if (base.startsWith("images")) out.push(dir + "labels" + base.slice("images".length));
  return out;
}

export async function loadNpy(imagesPath: string, labelsPath: string | null): Promise<Dataset> {
  const array = await readNpy(imagesPath);
  if (array.descr !== "|u1" && array.descr !== "<f4") {
    throw fileError(
      imagesPath,
      `unsupported image dtype '${array.descr}' (sia reads uint8 or float32 images)`,
    );
  }
  const shape = array.shape;
  if (shape.length !== 3 && shape.length !== 4) {
    throw fileError(
      imagesPath,
      `images must have rank 3 [N, H, W] or 4 [N, H, W, C], this has (${shape.join(", ")})`,
    );
  }
  const [n, h, w] = shape;
  const c = shape.length === 4 ? shape[3] : 1;
  const raw = npyValues(array);
  let images: Float32Array;
  if (raw instanceof Uint8Array) {
    images = new Float32Array(raw.length);
    for (let i = 0; i < raw.length; i++) images[i] = raw[i] / 255;
  } else {
    images = raw as Float32Array;
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of images) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    // NaN and Inf are named by makeDataset; a finite value outside [0, 1] means another scale.
    if (Number.isFinite(lo) && Number.isFinite(hi) && (lo < 0 || hi > 1)) {
      throw fileError(
        imagesPath,
        `float32 images span [${lo}, ${hi}]; sia expects [0, 1] (or uint8 0..255)`,
      );
    }
  }
  let labels: Int32Array | null = null;
  if (labelsPath) {
    const parsed = await readNpy(labelsPath);
    if (parsed.descr === "<f4" || parsed.descr === "<f8") {
      throw fileError(labelsPath, `labels must be integers, dtype is '${parsed.descr}'`);
    }
    if (parsed.shape.length !== 1) {
      throw fileError(
        labelsPath,
        `labels must have rank 1 [N], this has (${parsed.shape.join(", ")})`,
      );
    }
    if (parsed.shape[0] !== n) {
      throw fileError(labelsPath, `${parsed.shape[0]} labels for ${n} images in ${imagesPath}`);
    }
    labels = Int32Array.from(npyValues(parsed));
  }
  return makeDataset(imagesPath, images, [n, h, w, c], labels);
}
