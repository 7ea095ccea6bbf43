// The .npy shard sink: shard boundaries independent of batch boundaries, exact contents and labels
// (read back with our decoder and with real numpy), no temporary files, nothing for an empty stream.

import assert from "node:assert/strict";
import { from, lastValueFrom, toArray } from "rxjs";
import { decodeNpy, npyValues } from "../../../core/npy.ts";
import { makeBatch } from "../../../core/batch.ts";
import type { Batch, Shape } from "../../../core/batch.ts";
import { npyShardSink, SHARD_PATTERN, shardName } from "../../../stages/sink/shards.ts";
import { HAS_NUMPY, listNames, python, withTempDir } from "../../_shared.ts";

const H = 2;
const W = 3;
const C = 2;
const SIZE = H * W * C;

/** Value v of image i: distinct per image and position, not exactly representable sums. */
function pixel(i: number, v: number): number {
  return Math.fround(i + v / 16 + 1 / 3);
}

/** `total` images cut into batches of `batchSize`, labels (i * 7) mod 11 - 1 (some -1). */
function batches(total: number, batchSize: number): Batch[] {
  const out: Batch[] = [];
  for (let start = 0; start < total; start += batchSize) {
    const n = Math.min(batchSize, total - start);
    const images = new Float32Array(n * SIZE);
    for (let j = 0; j < n; j++) {
      for (let v = 0; v < SIZE; v++) images[j * SIZE + v] = pixel(start + j, v);
    }
    const shape: Shape = [n, H, W, C];
    out.push(makeBatch({
      images,
      shape,
      labels: Int32Array.from({ length: n }, (_, j) => ((start + j) * 7) % 11 - 1),
      ids: Int32Array.from({ length: n }, (_, j) => start + j),
      provenance: "noised",
      generator: "noise",
    }));
  }
  return out;
}

/** Feeds the batches through the sink's operator, then finishes it. */
async function run(dir: string, shardSize: number, input: Batch[]) {
  const sink = npyShardSink(dir, shardSize);
  const passed = await lastValueFrom(from(input).pipe(sink.operator, toArray()), {
    defaultValue: [],
  });
  const report = await sink.finish(false);
  return { passed, report };
}

Deno.test("shardSize 10, 25 images in batches of 7: shards of 10, 10, 5 with exact contents", async () => {
  await withTempDir(async (dir) => {
    const input = batches(25, 7);
    const { passed, report } = await run(dir, 10, input);
    // The sink passes every batch through, unchanged and in order.
    assert.equal(passed.length, input.length);
    passed.forEach((b, i) => assert.equal(b, input[i]));

    assert.deepEqual(report, {
      files: [
        { images: "images-00000.npy", labels: "labels-00000.npy", count: 10 },
        { images: "images-00001.npy", labels: "labels-00001.npy", count: 10 },
        { images: "images-00002.npy", labels: "labels-00002.npy", count: 5 },
      ],
      images: 25,
    });
    assert.deepEqual(await listNames(dir), [
      "images-00000.npy",
      "images-00001.npy",
      "images-00002.npy",
      "labels-00000.npy",
      "labels-00001.npy",
      "labels-00002.npy",
    ]);

    let next = 0;
    for (const [shard, count] of [[0, 10], [1, 10], [2, 5]]) {
      const images = decodeNpy(await Deno.readFile(`${dir}/${shardName("images", shard)}`));
      const labels = decodeNpy(await Deno.readFile(`${dir}/${shardName("labels", shard)}`));
      assert.equal(images.descr, "<f4");
      assert.deepEqual(images.shape, [count, H, W, C]);
      assert.equal(labels.descr, "<i4");
      assert.deepEqual(labels.shape, [count]);
      const values = npyValues(images);
      const want = Float32Array.from(
        { length: count * SIZE },
        (_, k) => pixel(next + Math.floor(k / SIZE), k % SIZE),
      );
      assert.deepEqual(values, want, `shard ${shard} images`);
      assert.deepEqual(
        npyValues(labels),
        Int32Array.from({ length: count }, (_, j) => ((next + j) * 7) % 11 - 1),
        `shard ${shard} labels`,
      );
      next += count;
    }
    assert.equal(next, 25);
  });
});

Deno.test("shard contents do not depend on how the stream is batched", async () => {
  const contents: Map<string, Uint8Array>[] = [];
  for (const batchSize of [1, 4, 10, 25, 100]) {
    await withTempDir(async (dir) => {
      await run(dir, 10, batches(25, batchSize));
      const files = new Map<string, Uint8Array>();
      for (const name of await listNames(dir)) {
        files.set(name, await Deno.readFile(`${dir}/${name}`));
      }
      contents.push(files);
    });
  }
  for (const files of contents.slice(1)) assert.deepEqual(files, contents[0]);
});

Deno.test("an exact multiple of shardSize writes full shards and no empty one", async () => {
  await withTempDir(async (dir) => {
    const { report } = await run(dir, 5, batches(20, 3));
    assert.equal((report.files as unknown[]).length, 4);
    assert.equal(report.images, 20);
    assert.equal((await listNames(dir)).length, 8);
    assert.ok((await listNames(dir)).every((n) => SHARD_PATTERN.test(n)));
  });
});

Deno.test("no temporary files remain, and every file matches SHARD_PATTERN", async () => {
  await withTempDir(async (dir) => {
    await run(dir, 3, batches(17, 4));
    const all = await listNames(dir);
    assert.equal(all.length, 12);
    for (const name of all) {
      assert.match(name, SHARD_PATTERN);
      assert.ok(!name.startsWith(".") && !name.endsWith(".tmp"), name);
    }
  });
});

Deno.test("finish() on an empty stream writes nothing", async () => {
  await withTempDir(async (dir) => {
    const { passed, report } = await run(dir, 10, []);
    assert.deepEqual(passed, []);
    assert.deepEqual(report, { files: [], images: 0 });
    assert.deepEqual(await listNames(dir), []);
  });
});

Deno.test("a batch with a different image size is an error", async () => {
  await withTempDir(async (dir) => {
    const sink = npyShardSink(dir, 10);
    const odd = makeBatch({
      images: new Float32Array(2 * 4),
      shape: [2, 2, 2, 1],
      labels: new Int32Array(2),
      ids: new Int32Array(2),
      provenance: "real",
    });
    await assert.rejects(
      lastValueFrom(from([...batches(3, 3), odd]).pipe(sink.operator)),
      /shards: batch of shape \[2,2,2,1\] after \[3,2,3,2\]/,
    );
    // What came before the bad batch is still written by finish().
    const report = await sink.finish(true);
    assert.equal(report.images, 3);
    assert.deepEqual(await listNames(dir), ["images-00000.npy", "labels-00000.npy"]);
  });
});

Deno.test("numpy loads a shard with exactly the values written", async () => {
  if (!HAS_NUMPY) {
    console.warn("python3 with numpy not found: skipping the numpy cross-check");
    return;
  }
  await withTempDir(async (dir) => {
    await run(dir, 10, batches(25, 7));
    // numpy prints every float32 as the exact float64 repr, and the labels, as JSON.
    const script = [
      "import json, sys, numpy as np",
      "d = sys.argv[1]",
      "out = []",
      "for i in range(3):",
      "    x = np.load(f'{d}/images-{i:05d}.npy')",
      "    y = np.load(f'{d}/labels-{i:05d}.npy')",
      "    out.append({'dtype': str(x.dtype), 'shape': list(x.shape), 'ldtype': str(y.dtype),",
      "                'values': [float(v) for v in x.ravel()], 'labels': [int(v) for v in y]})",
      "print(json.dumps(out))",
    ].join("\n");
    const shards = JSON.parse(await python(script, dir));
    let next = 0;
    for (const [i, count] of [10, 10, 5].entries()) {
      assert.equal(shards[i].dtype, "float32");
      assert.equal(shards[i].ldtype, "int32");
      assert.deepEqual(shards[i].shape, [count, H, W, C]);
      const want = Array.from(
        { length: count * SIZE },
        (_, k) => pixel(next + Math.floor(k / SIZE), k % SIZE),
      );
      // Exact equality: float32 -> float64 is exact, and JSON carries float64 exactly.
      assert.deepEqual(shards[i].values, want, `shard ${i}`);
      assert.deepEqual(
        shards[i].labels,
        Array.from({ length: count }, (_, j) => ((next + j) * 7) % 11 - 1),
      );
      next += count;
    }
  });
});

Deno.test({
  name: "a batch with the same image size but another height and width is an error",
  async fn() {
    await withTempDir(async (dir) => {
      const sink = npyShardSink(dir, 10);
      const transposed = makeBatch({
        images: new Float32Array(2 * SIZE),
        shape: [2, W, H, C],
        labels: new Int32Array(2),
        ids: new Int32Array(2),
        provenance: "real",
      });
      await assert.rejects(
        lastValueFrom(from([...batches(3, 3), transposed]).pipe(sink.operator)),
        /shards: batch of shape/,
      );
      await sink.finish(true);
    });
  },
});

Deno.test("a shard whose images write fails (a full disk) leaves neither file of it, nor a temp", async () => {
  await withTempDir(async (dir) => {
    const writeFile = Deno.writeFile;
    // The second shard's images hit ENOSPC after its labels were written to their temporary name.
    Deno.writeFile = (path, data, options) =>
      String(path).includes("images-00001")
        ? Promise.reject(new Error("No space left on device (os error 28)"))
        : writeFile(path, data, options);
    try {
      await assert.rejects(
        () => run(dir, 10, batches(25, 7)),
        /images-00001\.npy: could not write \(no space left on the device\)/,
      );
    } finally {
      Deno.writeFile = writeFile;
    }
    // The first shard is whole; of the second, nothing.
    assert.deepEqual(await listNames(dir), ["images-00000.npy", "labels-00000.npy"]);
  });
});
