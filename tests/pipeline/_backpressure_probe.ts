// Run by run_test.ts in a process of its own (deno test --parallel shares one process between
// test files, so their memory would blur the measurement): a 1,000,000-image noise stream through
// a deliberately slow sink; prints what the test asserts on, the peak rss growth included.

import { concatMap, lastValueFrom, tap } from "rxjs";
import type { Batch } from "../../core/batch.ts";
import { Credits, paced } from "../../pipeline/flow.ts";
import { noise } from "../../stages/generate/noise.ts";
import { makeDataset } from "../../stages/load/dataset.ts";
import { anchorBatches } from "../../stages/load/source.ts";
import { unitPixels } from "../_cli.ts";

const WINDOW = 2;
const COUNT = 1_000_000;
const BATCH = 256;
/** 14 x 14 keeps the run short; materialised, the stream would be 1e6 * 196 * 4 B = 784 MB. */
const SIDE = 14;

const n = 100;
const d = SIDE * SIDE;
const train = makeDataset(
  "test",
  unitPixels(n * d),
  [n, SIDE, SIDE, 1],
  Int32Array.from({ length: n }, (_, i) => i % 10),
);
// Not an object literal in the call, so it fits the context whether or not it has `report`.
const context = { seed: 0, train, report: () => {} };
const generate = noise.create({ r: 1, s: 0.05, k: 0, clip: false }, context);
const credits = new Credits(WINDOW);

let emitted = 0; // batches out of the source
let finished = 0; // batches out of the end of the graph
let maxAhead = 0;
let images = 0;
let lastId = -1;
let idsInOrder = true;
const baseline = Deno.memoryUsage().rss;
let peak = baseline;
const sample = () => (peak = Math.max(peak, Deno.memoryUsage().rss));
const timer = setInterval(sample, 5);
const t0 = performance.now();
try {
  await lastValueFrom(
    paced(anchorBatches(train, COUNT, BATCH, 0), credits).pipe(
      tap(() => {
        emitted++;
        maxAhead = Math.max(maxAhead, emitted - finished);
      }),
      generate,
      // The slow sink: an async step per batch, a real timer wait every 50th.
      concatMap(async (batch: Batch) => {
        if ((emitted + finished) % 50 === 0) {
          await new Promise((resolve) => setTimeout(resolve, 1));
        } else await Promise.resolve();
        return batch;
      }),
      tap((batch: Batch) => {
        for (const id of batch.ids) {
          if (id !== lastId + 1) idsInOrder = false;
          lastId = id;
        }
        images += batch.shape[0];
        finished++;
        if (finished % 16 === 0) sample();
        credits.give();
      }),
    ),
  );
} finally {
  clearInterval(timer);
}
const seconds = (performance.now() - t0) / 1000;
const growthMb = (peak - baseline) / 1e6;
console.error(
  `  ${images} images of ${SIDE}x${SIDE} in ${seconds.toFixed(1)} s; ` +
    `peak rss growth ${growthMb.toFixed(0)} MB; max ${maxAhead} batches ahead`,
);
console.log(
  JSON.stringify({
    images,
    finished,
    emitted,
    idsInOrder,
    lastId,
    maxAhead,
    growthMb,
    materialisedMb: (COUNT * d * 4) / 1e6,
  }),
);
