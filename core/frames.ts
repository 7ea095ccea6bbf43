// A frame is one batch as one safetensors blob: an 8-byte little-endian header length N, N bytes
// of JSON (tensor dtypes, shapes and byte ranges, and string metadata under "__metadata__"),
// padded with spaces so the data starts on a 64-byte boundary, then the raw little-endian tensors
// in the order images (float32), labels, ids (int32), provenance (uint8), so each one is aligned
// for a typed-array view. A blob is self-delimiting (the data ends at the largest end offset), so
// a stream of frames is the blobs back to back. Pure functions on bytes.

import type { Batch } from "./batch.ts";

export type Layout = "nhwc" | "nchw";
export const LAYOUTS: readonly Layout[] = ["nhwc", "nchw"];

/** Where the data starts is rounded up to this many bytes. */
const ALIGN = 64;

type Dtype = "F32" | "I32" | "U8";
type Typed = Float32Array | Int32Array | Uint8Array;

export interface TensorEntry {
  readonly dtype: Dtype;
  readonly shape: number[];
  readonly data_offsets: [number, number];
}

export interface Frame {
  readonly metadata: Record<string, string>;
  readonly images: Float32Array;
  readonly imageShape: number[];
  readonly labels: Int32Array;
  readonly ids: Int32Array;
  readonly provenance: Uint8Array;
}

function dtypeOf(values: Typed): Dtype {
  return values instanceof Float32Array ? "F32" : values instanceof Int32Array ? "I32" : "U8";
}

/** NHWC -> NCHW. */
function toChannelsFirst(images: Float32Array, [n, h, w, c]: readonly number[]): Float32Array {
  const out = new Float32Array(images.length);
  const plane = h * w;
  for (let i = 0; i < n; i++) {
    const base = i * plane * c;
    for (let p = 0; p < plane; p++) {
      for (let k = 0; k < c; k++) out[base + k * plane + p] = images[base + p * c + k];
    }
  }
  return out;
}

/** The frame of a batch; `metadata` values are strings, as safetensors requires. */
export function encodeFrame(
  batch: Batch,
  metadata: Record<string, string>,
  layout: Layout = "nhwc",
): Uint8Array<ArrayBuffer> {
  const [n, h, w, c] = batch.shape;
  const tensors: [string, Typed, number[]][] = [
    [
      "images",
      layout === "nchw" ? toChannelsFirst(batch.images, batch.shape) : batch.images,
      layout === "nchw" ? [n, c, h, w] : [n, h, w, c],
    ],
    ["labels", batch.labels, [n]],
    ["ids", batch.ids, [n]],
    ["provenance", batch.provenance, [n]],
  ];
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, values, shape] of tensors) {
    header[name] = {
      dtype: dtypeOf(values),
      shape,
      data_offsets: [offset, offset + values.byteLength],
    };
    offset += values.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil((8 + json.length) / ALIGN) * ALIGN - 8;
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.fill(0x20, 8, 8 + padded);
  out.set(json, 8);
  let at = 8 + padded;
  for (const [, values] of tensors) {
    out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), at);
    at += values.byteLength;
  }
  return out;
}

export class FrameError extends Error {
  override name = "FrameError";
}

/** The header, and the whole blob's length, from bytes that hold at least the length and header. */
function parseHeader(bytes: Uint8Array): { header: Record<string, TensorEntry>; total: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = Number(view.getBigUint64(0, true));
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + length));
  const header = JSON.parse(text) as Record<string, TensorEntry>;
  const ends = Object.entries(header).filter(([k]) => k !== "__metadata__").map(([, t]) =>
    t.data_offsets[1]
  );
  return { header, total: 8 + length + Math.max(0, ...ends) };
}

/** Decodes one complete frame (copies each tensor out, so the views are aligned). */
export function decodeFrame(bytes: Uint8Array): Frame {
  if (bytes.length < 8) throw new FrameError("truncated frame (no header length)");
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  if (bytes.length < 8 + length) throw new FrameError("truncated frame header");
  const { header, total } = parseHeader(bytes);
  if (bytes.length !== total) {
    throw new FrameError(`frame holds ${bytes.length} bytes, needs ${total}`);
  }
  const start = 8 + length;
  const tensor = (name: string): [Uint8Array, TensorEntry] => {
    const t = header[name];
    if (!t) throw new FrameError(`frame has no "${name}" tensor`);
    return [bytes.slice(start + t.data_offsets[0], start + t.data_offsets[1]), t];
  };
  const [images, imageEntry] = tensor("images");
  return {
    metadata: (header as unknown as { __metadata__: Record<string, string> }).__metadata__ ?? {},
    images: new Float32Array(images.buffer),
    imageShape: imageEntry.shape,
    labels: new Int32Array(tensor("labels")[0].buffer),
    ids: new Int32Array(tensor("ids")[0].buffer),
    provenance: tensor("provenance")[0],
  };
}

/** Cuts a byte stream into frames as the bytes arrive; a stream ending mid-frame is an error. */
export async function* readFrames(body: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  // Chunks are joined only when they hold what the next step needs (the length, the header, the
  // whole frame), so a frame is copied a bounded number of times however small the chunks.
  let chunks: Uint8Array[] = [];
  let have = 0;
  const join = (): Uint8Array => {
    if (chunks.length !== 1) {
      const out = new Uint8Array(have);
      let at = 0;
      for (const c of chunks) {
        out.set(c, at);
        at += c.length;
      }
      chunks = [out];
    }
    return chunks[0];
  };
  let need = 8;
  let total = -1;
  for await (const chunk of body) {
    chunks.push(chunk);
    have += chunk.length;
    while (have >= need) {
      const bytes = join();
      if (total >= 0) {
        yield bytes.slice(0, total);
        chunks = have > total ? [bytes.subarray(total)] : [];
        have -= total;
        need = 8;
        total = -1;
      } else if (need === 8) {
        need = 8 + Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
      } else {
        total = need = parseHeader(bytes).total;
      }
    }
  }
  if (have) throw new FrameError(`stream ended inside a frame (${have} bytes)`);
}
