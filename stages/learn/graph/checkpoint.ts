// Checkpoints: one file, written to a temporary name and renamed (a crash never leaves half a
// checkpoint), holding the model description, the step count, and every tensor (parameters,
// optimizer state, batch-norm running statistics) as float32:
//   "SIACKPT1" | u32 little-endian header length | JSON header | zero padding to 4 bytes | data
// A checkpoint is also a tfjs model: toTfjs() gives the description and tfjs tensors that
// blocks/tfjs.ts forward() runs.

import * as tf from "@tensorflow/tfjs";
import { fileError } from "../../../core/errors.ts";
import { atomicWrite } from "../../../core/files.ts";
import type { ActShape, Block } from "../blocks/model.ts";

const MAGIC = "SIACKPT1";

export interface CheckpointHeader {
  readonly format: "sia-checkpoint";
  readonly version: 1;
  readonly step: number;
  readonly blocks: readonly Block[];
  /** Input shape of one image or vector, [H, W, C] or [F]. */
  readonly input: ActShape;
  /** Free-form facts the caller wants back (optimizer, seed, learner, ...). */
  readonly meta: Record<string, unknown>;
  readonly tensors: { name: string; shape: readonly number[]; offset: number; length: number }[];
}

export interface Checkpoint {
  readonly header: CheckpointHeader;
  readonly values: Map<string, Float32Array>;
}

export async function saveCheckpoint(
  path: string,
  fields: {
    step: number;
    blocks: readonly Block[];
    input: ActShape;
    meta?: Record<string, unknown>;
  },
  values: Map<string, Float32Array>,
  shapes: Map<string, readonly number[]>,
): Promise<void> {
  let offset = 0;
  const tensors = [...values.entries()].map(([name, v]) => {
    const entry = { name, shape: shapes.get(name) ?? [v.length], offset, length: v.length };
    offset += v.length;
    return entry;
  });
  const header: CheckpointHeader = {
    format: "sia-checkpoint",
    version: 1,
    step: fields.step,
    blocks: fields.blocks,
    input: fields.input,
    meta: fields.meta ?? {},
    tensors,
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const start = Math.ceil((8 + 4 + json.length) / 4) * 4;
  const bytes = new Uint8Array(start + 4 * offset);
  bytes.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(bytes.buffer).setUint32(8, json.length, true);
  bytes.set(json, 12);
  const data = new Float32Array(bytes.buffer, start, offset);
  for (const t of tensors) data.set(values.get(t.name)!, t.offset);
  await atomicWrite(path, bytes);
}

export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw fileError(path, e instanceof Deno.errors.NotFound ? "no such checkpoint" : String(e));
  }
  if (bytes.length < 12 || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) {
    throw fileError(path, "not a sia checkpoint (bad magic)");
  }
  const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(8, true);
  if (12 + length > bytes.length) throw fileError(path, "truncated checkpoint header");
  let header: CheckpointHeader;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + length)));
  } catch {
    throw fileError(path, "corrupt checkpoint header");
  }
  const start = Math.ceil((12 + length) / 4) * 4;
  const count = header.tensors.reduce((s, t) => s + t.length, 0);
  if (bytes.length !== start + 4 * count) {
    throw fileError(
      path,
      `checkpoint holds ${bytes.length - start} data bytes, header says ${4 * count}`,
    );
  }
  const data = new Float32Array(bytes.slice(start).buffer);
  const values = new Map(
    header.tensors.map((t) => [t.name, data.slice(t.offset, t.offset + t.length)]),
  );
  return { header, values };
}

/** The checkpoint's model as tfjs tensors, for blocks/tfjs.ts forward() (caller disposes). */
export function toTfjs(
  checkpoint: Checkpoint,
): { blocks: readonly Block[]; params: Map<string, tf.Tensor> } {
  const params = new Map<string, tf.Tensor>();
  for (const t of checkpoint.header.tensors) {
    params.set(t.name, tf.tensor(checkpoint.values.get(t.name)!, [...t.shape]));
  }
  return { blocks: checkpoint.header.blocks, params };
}
