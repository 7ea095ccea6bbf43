// IDX, the format of MNIST and Fashion-MNIST: a 4-byte magic (0, 0, dtype, rank), big-endian
// uint32 dimensions, then the values. sia reads unsigned-byte files (dtype 0x08): images of rank
// 3 and labels of rank 1.

import { fileError } from "../../core/errors.ts";
import { makeDataset } from "./dataset.ts";
import type { Dataset } from "./dataset.ts";
import { readBytes } from "./files.ts";

export interface IdxArray {
  readonly dims: number[];
  readonly data: Uint8Array;
}

export function parseIdx(path: string, bytes: Uint8Array): IdxArray {
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) {
    throw fileError(path, "not an IDX file (bad magic number)");
  }
  if (bytes[2] !== 0x08) {
    throw fileError(
      path,
      `unsupported IDX data type 0x${bytes[2].toString(16)} (sia reads unsigned bytes, 0x08)`,
    );
  }
  const rank = bytes[3];
  if (rank < 1 || bytes.length < 4 + 4 * rank) {
    throw fileError(path, `truncated IDX header (rank ${rank}, ${bytes.length} bytes)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((a, b) => a * b, 1);
  const start = 4 + 4 * rank;
  if (bytes.length - start !== count) {
    const what = bytes.length - start < count ? "truncated" : "has trailing bytes";
    throw fileError(
      path,
      `${what}: header says [${dims}] = ${count} values, file holds ${bytes.length - start}`,
    );
  }
  return { dims, data: bytes.subarray(start) };
}

/** Images (rank 3, [N, H, W]) and optionally their labels (rank 1, [N]). */
export async function loadIdx(imagesPath: string, labelsPath: string | null): Promise<Dataset> {
  const images = parseIdx(imagesPath, await readBytes(imagesPath));
  if (images.dims.length !== 3) {
    throw fileError(imagesPath, `IDX images must have rank 3 [N, H, W], this has [${images.dims}]`);
  }
  let labels: Int32Array | null = null;
  if (labelsPath) {
    const parsed = parseIdx(labelsPath, await readBytes(labelsPath));
    if (parsed.dims.length !== 1) {
      throw fileError(labelsPath, `IDX labels must have rank 1 [N], this has [${parsed.dims}]`);
    }
    if (parsed.dims[0] !== images.dims[0]) {
      throw fileError(
        labelsPath,
        `${parsed.dims[0]} labels for ${images.dims[0]} images in ${imagesPath}`,
      );
    }
    labels = Int32Array.from(parsed.data);
  }
  const [n, h, w] = images.dims;
  const pixels = new Float32Array(images.data.length);
  for (let i = 0; i < pixels.length; i++) pixels[i] = images.data[i] / 255;
  return makeDataset(imagesPath, pixels, [n, h, w, 1], labels);
}

/** The labels file that belongs to an images file: train-images-idx3-ubyte -> train-labels-idx1-ubyte. */
export function idxLabelsName(imagesName: string): string | null {
  const labels = imagesName.replace("images-idx3", "labels-idx1");
  return labels === imagesName ? null : labels;
}
