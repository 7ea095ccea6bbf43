// The unit that flows between stages: a batch of images in NHWC float32 with everything a later
// stage needs to know about where each image came from.

/** Where an image came from: real data, a generative model, or a noise perturbation of real data. */
export const Provenance = { real: 0, generated: 1, noised: 2 } as const;
export type ProvenanceName = keyof typeof Provenance;
export const PROVENANCE_NAMES: readonly ProvenanceName[] = ["real", "generated", "noised"];

/** [n, height, width, channels]. */
export type Shape = readonly [number, number, number, number];

export interface Batch {
  /** NHWC, row-major, length n*h*w*c, values on the data's scale ([0, 1] for loaded data). */
  readonly images: Float32Array;
  readonly shape: Shape;
  /** Class label per image; -1 when unlabeled. */
  readonly labels: Int32Array;
  /** Stable identity per image: the dataset index for real images, the running sample index for
   * generated ones. With provenance it keys every per-image random stream. */
  readonly ids: Int32Array;
  /** Provenance code per image (see Provenance). */
  readonly provenance: Uint8Array;
  /** Name of the stage that made each image ("" for real images). */
  readonly generator: readonly string[];
  /** Anchor batches only: the stream position each anchor stands for, which a generator gives
   * as id (and so as random key) to the image it makes from that anchor. Without it a generator
   * numbers its images by its running count. */
  readonly samples?: Int32Array;
}

export function imageSize(shape: Shape): number {
  return shape[1] * shape[2] * shape[3];
}

/** The ids a generator gives the images it makes from `anchors`: their stream positions, or
 * `next`, `next + 1`, ... (its running count) for anchors that carry none. */
export function sampleIds(anchors: Batch, next: number): Int32Array {
  return anchors.samples?.slice() ??
    Int32Array.from({ length: anchors.shape[0] }, (_, j) => next + j);
}

/** Builds a batch after checking that every per-image array agrees with the shape. */
export function makeBatch(fields: {
  images: Float32Array;
  shape: Shape;
  labels: Int32Array;
  ids: Int32Array;
  provenance: Uint8Array | ProvenanceName;
  generator?: readonly string[] | string;
}): Batch {
  const n = fields.shape[0];
  const size = imageSize(fields.shape);
  if (fields.images.length !== n * size) {
    throw new Error(`batch: ${fields.images.length} values for shape [${fields.shape}]`);
  }
  if (fields.labels.length !== n || fields.ids.length !== n) {
    throw new Error(
      `batch: ${fields.labels.length} labels, ${fields.ids.length} ids for ${n} images`,
    );
  }
  const provenance = typeof fields.provenance === "string"
    ? new Uint8Array(n).fill(Provenance[fields.provenance])
    : fields.provenance;
  const generator = typeof fields.generator === "string" || fields.generator === undefined
    ? new Array<string>(n).fill(fields.generator ?? "")
    : fields.generator;
  if (provenance.length !== n || generator.length !== n) {
    throw new Error(`batch: provenance or generator length differs from ${n} images`);
  }
  return {
    images: fields.images,
    shape: fields.shape,
    labels: fields.labels,
    ids: fields.ids,
    provenance,
    generator,
  };
}

/** The batches one after another, as one batch of images [h, w, c] (`image`: the empty case's). */
export function concatBatches(
  parts: readonly Batch[],
  image: readonly [number, number, number],
): Batch {
  const [h, w, c] = image;
  const n = parts.reduce((s, b) => s + b.shape[0], 0);
  const size = h * w * c;
  const images = new Float32Array(n * size);
  const labels = new Int32Array(n);
  const ids = new Int32Array(n);
  const provenance = new Uint8Array(n);
  const generator: string[] = [];
  let offset = 0;
  for (const b of parts) {
    images.set(b.images, offset * size);
    labels.set(b.labels, offset);
    ids.set(b.ids, offset);
    provenance.set(b.provenance, offset);
    generator.push(...b.generator);
    offset += b.shape[0];
  }
  return makeBatch({ images, shape: [n, h, w, c], labels, ids, provenance, generator });
}

/** An in-memory labelled image set: the real data, bounded by the data set's size, never by
 * the length of a generated stream. */
export interface Dataset {
  /** Where it came from, as a user would name it (a path, or "mnist (embedded)"). */
  readonly source: string;
  /** NHWC float32 on [0, 1]. */
  readonly images: Float32Array;
  readonly shape: Shape;
  /** Class per image, -1 when unlabeled. */
  readonly labels: Int32Array;
  /** Index of each image in its source file or package, kept through splits and subsets. */
  readonly ids: Int32Array;
}

export interface Splits {
  readonly train: Dataset;
  /** Held-out real images; null when the source has no test split and none was asked for. */
  readonly test: Dataset | null;
  /** One line saying how train and test were obtained, for the manifest and the summary. */
  readonly splitNote: string;
}
