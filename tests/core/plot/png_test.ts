// The PNG encoder, decoded by hand: signature, chunk layout and CRCs, the IHDR fields, a zlib
// stream that DecompressionStream("deflate") inflates, and the exact pixel bytes back.

import assert from "node:assert/strict";
import { Rng } from "../../../core/rng.ts";
import { crc32, encodePng, pipeBytes, PNG_SIGNATURE } from "../../../core/plot/png.ts";
import type { RgbImage } from "../../../core/plot/png.ts";

const ascii = (s: string) => new TextEncoder().encode(s);

interface Chunk {
  readonly type: string;
  readonly data: Uint8Array;
  readonly crc: number;
  /** CRC-32 of type + data, computed here. */
  readonly expectedCrc: number;
}

function chunks(png: Uint8Array): Chunk[] {
  assert.deepEqual(png.subarray(0, 8), PNG_SIGNATURE, "signature");
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const out: Chunk[] = [];
  for (let at = 8; at < png.length;) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...png.subarray(at + 4, at + 8));
    const data = png.subarray(at + 8, at + 8 + length);
    out.push({
      type,
      data,
      crc: view.getUint32(at + 8 + length),
      expectedCrc: crc32(png.subarray(at + 4, at + 8 + length)),
    });
    at += 12 + length;
    assert.ok(at <= png.length, "chunk runs past the end");
  }
  return out;
}

async function decode(png: Uint8Array): Promise<RgbImage> {
  const list = chunks(png);
  for (const c of list) assert.equal(c.crc, c.expectedCrc, `CRC of ${c.type}`);
  assert.equal(list[0].type, "IHDR");
  assert.equal(list.at(-1)!.type, "IEND");
  assert.equal(list.at(-1)!.data.length, 0);
  const ihdr = new DataView(list[0].data.buffer, list[0].data.byteOffset, 13);
  assert.equal(list[0].data.length, 13);
  const width = ihdr.getUint32(0), height = ihdr.getUint32(4);
  // bit depth 8, colour type 2 (RGB), compression 0, filter method 0, no interlace
  assert.deepEqual([...list[0].data.subarray(8)], [8, 2, 0, 0, 0]);
  const idat = list.filter((c) => c.type === "IDAT").map((c) => c.data);
  const zlib = new Uint8Array(idat.reduce((s, d) => s + d.length, 0));
  idat.reduce((at, d) => (zlib.set(d, at), at + d.length), 0);
  // zlib header: deflate with a 32 KiB window, header checksum a multiple of 31.
  assert.equal(zlib[0] & 0x0f, 8);
  assert.equal(((zlib[0] << 8) | zlib[1]) % 31, 0);
  const raw = await pipeBytes(zlib, new DecompressionStream("deflate"));
  const stride = width * 3;
  assert.equal(raw.length, height * (stride + 1));
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    assert.equal(raw[y * (stride + 1)], 0, `row ${y} filter type`);
    data.set(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)), y * stride);
  }
  return { width, height, data };
}

Deno.test("crc32 matches the standard check values", () => {
  assert.equal(crc32(ascii("123456789")), 0xcbf43926);
  assert.equal(crc32(ascii("IEND")), 0xae426082);
  assert.equal(crc32(new Uint8Array(0)), 0);
  // Running form: crc of a whole = crc of the second part continued from the first.
  const all = ascii("The quick brown fox jumps over the lazy dog");
  assert.equal(crc32(all), 0x414fa339);
  assert.equal(crc32(all.subarray(10), crc32(all.subarray(0, 10))), 0x414fa339);
});

Deno.test("encodePng round trip: IHDR, CRCs and every pixel byte", async () => {
  for (const [width, height] of [[1, 1], [7, 5], [64, 3], [300, 200]]) {
    const rng = new Rng(11, "png", width, height);
    const data = Uint8Array.from({ length: width * height * 3 }, () => rng.int(256));
    const png = await encodePng({ width, height, data });
    const back = await decode(png);
    assert.equal(back.width, width);
    assert.equal(back.height, height);
    assert.deepEqual(back.data, data);
  }
});

Deno.test("encodePng compresses a flat image and keeps a hand-checked layout", async () => {
  const width = 400, height = 300;
  const data = new Uint8Array(width * height * 3).fill(255);
  const png = await encodePng({ width, height, data });
  assert.ok(png.length < 2000, `a white 400 x 300 image took ${png.length} bytes`);
  const list = chunks(png);
  assert.deepEqual(list.map((c) => c.type), ["IHDR", "IDAT", "IEND"]);
  // IEND is always the same 12 bytes.
  assert.deepEqual([...png.subarray(-12)], [0, 0, 0, 0, 73, 69, 78, 68, 0xae, 0x42, 0x60, 0x82]);
  assert.deepEqual((await decode(png)).data, data);
});

Deno.test("encodePng rejects a wrong size or buffer", async () => {
  await assert.rejects(
    () => encodePng({ width: 2, height: 2, data: new Uint8Array(11) }),
    RangeError,
  );
  await assert.rejects(
    () => encodePng({ width: 0, height: 2, data: new Uint8Array(0) }),
    RangeError,
  );
  await assert.rejects(
    () => encodePng({ width: 1.5, height: 2, data: new Uint8Array(9) }),
    RangeError,
  );
});

Deno.test("a corrupted byte is caught by the chunk CRC", async () => {
  const png = await encodePng({ width: 2, height: 2, data: new Uint8Array(12).fill(7) });
  png[20] ^= 1; // inside the IHDR data (width)
  const ihdr = chunks(png)[0];
  assert.notEqual(ihdr.crc, ihdr.expectedCrc);
});
