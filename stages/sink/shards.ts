// The .npy shard writer: images-00000.npy (float32 [n, H, W, C]) and labels-00000.npy (int32 [n],
// -1 where unlabeled), shardSize images per shard. Memory: one shard's buffer, whatever the
// stream's length. A shard's two files go to temporary names and are renamed into place only when
// both are complete (labels first), so a failed write leaves neither behind.

import { Observable } from "rxjs";
import { encodeNpy } from "../../core/npy.ts";
import { imageSize } from "../../core/batch.ts";
import type { Batch, Shape } from "../../core/batch.ts";
import { atomicWriteAll } from "../../core/files.ts";
import type { Sink } from "../../core/stage.ts";

export const SHARD_PATTERN = /^(images|labels)-\d{5}\.npy$/;

export interface ShardRecord {
  readonly images: string;
  readonly labels: string;
  readonly count: number;
}

export function shardName(kind: "images" | "labels", index: number): string {
  return `${kind}-${String(index).padStart(5, "0")}.npy`;
}

export function npyShardSink(dir: string, shardSize: number): Sink {
  let imageShape: Shape | null = null;
  let buffer = new Float32Array(0);
  let labels = new Int32Array(shardSize);
  let filled = 0;
  const written: ShardRecord[] = [];

  async function flush(): Promise<void> {
    if (filled === 0 || !imageShape) return;
    const index = written.length;
    const size = imageSize(imageShape);
    const record = {
      images: shardName("images", index),
      labels: shardName("labels", index),
      count: filled,
    };
    const [, h, w, c] = imageShape;
    await atomicWriteAll([
      { path: `${dir}/${record.labels}`, bytes: encodeNpy(labels.subarray(0, filled), [filled]) },
      {
        path: `${dir}/${record.images}`,
        bytes: encodeNpy(buffer.subarray(0, filled * size), [filled, h, w, c]),
      },
    ]);
    written.push(record);
    filled = 0;
  }

  async function add(batch: Batch): Promise<void> {
    if (!imageShape) {
      imageShape = batch.shape;
      buffer = new Float32Array(shardSize * imageSize(batch.shape));
      labels = new Int32Array(shardSize);
    } else if (batch.shape.some((dim, axis) => axis > 0 && dim !== imageShape![axis])) {
      throw new Error(`shards: batch of shape [${batch.shape}] after [${imageShape}]`);
    }
    const size = imageSize(imageShape);
    let j = 0;
    while (j < batch.shape[0]) {
      const take = Math.min(shardSize - filled, batch.shape[0] - j);
      buffer.set(batch.images.subarray(j * size, (j + take) * size), filled * size);
      labels.set(batch.labels.subarray(j, j + take), filled);
      filled += take;
      j += take;
      if (filled === shardSize) await flush();
    }
  }

  // Every batch that arrives joins the write queue at once, so a batch the graph has handed over
  // is written even if the run is stopped before its write ends; finish() drains the queue. A batch
  // goes on downstream when its write is done, which is what paces the source.
  let queue: Promise<void> = Promise.resolve();
  const operator = (source: Observable<Batch>) =>
    new Observable<Batch>((subscriber) =>
      source.subscribe({
        next(batch) {
          queue = queue.then(() => add(batch));
          queue.then(() => subscriber.next(batch), (e) => subscriber.error(e));
        },
        error: (e) => subscriber.error(e),
        complete: () => void queue.then(() => subscriber.complete(), (e) => subscriber.error(e)),
      })
    );
  return {
    name: "shards",
    operator,
    async finish() {
      await queue.catch(() => {});
      await flush();
      return { files: written, images: written.reduce((s, r) => s + r.count, 0) };
    },
  };
}
