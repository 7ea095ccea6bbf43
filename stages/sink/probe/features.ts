// Frozen, detached encoder features for the probes (Table 3). The encoder runs as an eval-mode
// forward graph (batch norm from the running statistics) whose parameters are constants baked
// from a snapshot copy taken here: the caller's arrays are only read, once, so neither this
// extraction nor any training that continues afterwards can change what the features were
// computed with, and nothing the probes do can reach back into the encoder. The features come
// back as a plain Float32Array: there is no graph to back-propagate into.

import { createSession, ort } from "../../../core/onnx.ts";
import type { Dataset } from "../../../core/batch.ts";
import type { ActShape, Block } from "../../learn/blocks/model.ts";
import { paramSpecs } from "../../learn/blocks/model.ts";
import { forwardModel } from "../../learn/graph/forward.ts";

/**
 * A copy of every tensor the model description needs (parameters and running statistics),
 * checked against the description's shapes. Extra entries (optimizer state, a head's weights)
 * are ignored.
 */
export function snapshotParams(
  blocks: readonly Block[],
  input: ActShape,
  params: ReadonlyMap<string, Float32Array>,
): Map<string, Float32Array> {
  const image = input.length === 3;
  const specs = paramSpecs(blocks, image ? [input[2], input[0], input[1]] : input);
  const snapshot = new Map<string, Float32Array>();
  for (const spec of specs) {
    const values = params.get(spec.name);
    const size = spec.shape.reduce((a, b) => a * b, 1);
    if (!values) throw new Error(`extractFeatures: no tensor ${spec.name}`);
    if (values.length !== size) {
      throw new Error(
        `extractFeatures: ${spec.name} has ${values.length} values, [${spec.shape}] needs ${size}`,
      );
    }
    snapshot.set(spec.name, values.slice());
  }
  return snapshot;
}

/**
 * Encoder features of every image of `dataset`, in order: [N, F] row-major, F the model's output
 * width. `input` is one image's shape [H, W, C] (or [F] for a vector model); `params` holds the
 * encoder's tensors (e.g. Trainer.value(name) for each name), copied before use and never
 * written. Runs in batches of `batch` images through onnxruntime.
 */
export async function extractFeatures(
  blocks: readonly Block[],
  input: ActShape,
  params: ReadonlyMap<string, Float32Array>,
  dataset: Dataset,
  batch = 256,
): Promise<Float32Array> {
  const [n, ...image] = dataset.shape;
  if (image.join() !== input.join()) {
    throw new Error(`extractFeatures: images [${image}] do not match the model input [${input}]`);
  }
  if (!(batch >= 1)) throw new Error(`extractFeatures: batch ${batch}`);
  const frozen = snapshotParams(blocks, input, params);
  const { model } = forwardModel(blocks, input, { training: false, params: frozen });
  const session = await createSession(model);
  const size = image.reduce((a, b) => a * b, 1);
  let features: Float32Array | null = null;
  let width = 0;
  try {
    for (let start = 0; start < n; start += batch) {
      const rows = Math.min(batch, n - start);
      // A copy, so the session never holds a view of the data set.
      const x = dataset.images.slice(start * size, (start + rows) * size);
      const out = await session.run({ x: new ort.Tensor("float32", x, [rows, ...image]) });
      const y = out.y;
      const data = y.data as Float32Array;
      if (features === null) {
        width = data.length / rows;
        features = new Float32Array(n * width);
      }
      if (y.dims.length !== 2 || y.dims[1] !== width) {
        throw new Error(`extractFeatures: output [${y.dims}], expected [${rows}, ${width}]`);
      }
      features.set(data, start * width);
    }
  } finally {
    await session.release();
  }
  return features ?? new Float32Array(0);
}
