// The frame format byte for byte as the README documents it: the 8-byte little-endian header
// length, a JSON header padded with spaces to a 64-byte data start, tensors in the order images,
// labels, ids, provenance; NCHW is the transpose of NHWC; a stream cut anywhere reads back.

import assert from "node:assert/strict";
import { makeBatch } from "../../core/batch.ts";
import { decodeFrame, encodeFrame, FrameError, readFrames } from "../../core/frames.ts";
import { Rng } from "../../core/rng.ts";

function batch(n: number, h: number, w: number, c: number, seed = 0) {
  const rng = new Rng(seed, "frames-test");
  return makeBatch({
    images: Float32Array.from({ length: n * h * w * c }, () => rng.normal()),
    shape: [n, h, w, c],
    labels: Int32Array.from({ length: n }, (_, i) => i % 3 - 1),
    ids: Int32Array.from({ length: n }, (_, i) => 1000 + i),
    provenance: Uint8Array.from({ length: n }, (_, i) => i % 3),
  });
}

Deno.test("a frame is the documented safetensors blob: length, padded header, aligned tensors", () => {
  const b = batch(3, 2, 4, 3);
  const bytes = encodeFrame(b, { job: "a", index: "7" });
  const length = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal((8 + length) % 64, 0, "data starts on a 64-byte boundary");
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + length));
  assert.match(text, /^\{"__metadata__":\{"job":"a","index":"7"\},"images":/);
  assert.match(text, /\} *$/, "padding is spaces after the JSON");
  const header = JSON.parse(text);
  assert.deepEqual(header.images, { dtype: "F32", shape: [3, 2, 4, 3], data_offsets: [0, 288] });
  assert.deepEqual(header.labels, { dtype: "I32", shape: [3], data_offsets: [288, 300] });
  assert.deepEqual(header.ids, { dtype: "I32", shape: [3], data_offsets: [300, 312] });
  assert.deepEqual(header.provenance, { dtype: "U8", shape: [3], data_offsets: [312, 315] });
  assert.equal(bytes.length, 8 + length + 315, "nothing after the last tensor");
  const data = bytes.slice(8 + length);
  assert.deepEqual(new Float32Array(data.buffer, 0, 72), b.images);
  assert.deepEqual(new Int32Array(data.buffer, 288, 3), b.labels);
  assert.deepEqual(new Int32Array(data.buffer, 300, 3), b.ids);
  assert.deepEqual(data.subarray(312), b.provenance);
});

Deno.test("decodeFrame inverts encodeFrame; layout=nchw is the channels-first transpose", () => {
  const b = batch(2, 3, 5, 3, 1);
  const nhwc = decodeFrame(encodeFrame(b, { k: "v" }));
  assert.deepEqual(nhwc.metadata, { k: "v" });
  assert.deepEqual(nhwc.imageShape, [2, 3, 5, 3]);
  assert.deepEqual(nhwc.images, b.images);
  assert.deepEqual(nhwc.labels, b.labels);
  assert.deepEqual(nhwc.ids, b.ids);
  assert.deepEqual(nhwc.provenance, b.provenance);
  const nchw = decodeFrame(encodeFrame(b, {}, "nchw"));
  assert.deepEqual(nchw.imageShape, [2, 3, 3, 5]);
  for (let i = 0; i < 2; i++) {
    for (let y = 0; y < 3; y++) {
      for (let x = 0; x < 5; x++) {
        for (let k = 0; k < 3; k++) {
          assert.equal(
            nchw.images[((i * 3 + k) * 3 + y) * 5 + x],
            b.images[((i * 3 + y) * 5 + x) * 3 + k],
          );
        }
      }
    }
  }
});

async function* chunks(bytes: Uint8Array, sizes: () => number) {
  for (let at = 0; at < bytes.length;) {
    const n = Math.min(bytes.length - at, sizes());
    yield bytes.slice(at, at + n);
    at += n;
  }
}

Deno.test("readFrames cuts frames back to back out of any chunking; a cut frame is an error", async () => {
  const frames = [batch(4, 3, 3, 1, 2), batch(1, 3, 3, 1, 3), batch(5, 3, 3, 1, 4)].map((b, i) =>
    encodeFrame(b, { index: String(i) })
  );
  const stream = new Uint8Array(frames.reduce((s, f) => s + f.length, 0));
  let at = 0;
  for (const f of frames) {
    stream.set(f, at);
    at += f.length;
  }
  const rng = new Rng(5, "chunks");
  for (const sizes of [() => 1, () => 7, () => 1 + rng.int(300), () => 1 << 20]) {
    const got: Uint8Array[] = [];
    for await (const f of readFrames(chunks(stream, sizes))) got.push(f);
    assert.deepEqual(got, frames);
  }
  await assert.rejects(async () => {
    for await (const _ of readFrames(chunks(stream.subarray(0, stream.length - 3), () => 64))) {
      // Reads until the cut.
    }
  }, FrameError);
});
