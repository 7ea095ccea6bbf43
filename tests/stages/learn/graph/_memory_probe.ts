// Run by trainer_test.ts in a process of its own (deno test --parallel shares one process between
// test files, so their memory would blur the measurement): trains a small model for 500 warm-up
// steps (allocators and JIT settle; measured flat from there to step 3,000), then 1,000 more, and
// prints the resident memory before and after those 1,000.

import { Rng } from "../../../../core/rng.ts";
import { trainStep } from "../../../../stages/learn/graph/train_step.ts";
import { Trainer } from "../../../../stages/learn/graph/trainer.ts";
import { TINY } from "../_options.ts";

const graph = trainStep({
  blocks: TINY,
  input: [8, 8, 1],
  batch: 4,
  loss: { kind: "ntxent", tau: 0.5 },
  optimizer: { kind: "sgd", momentum: 0.9, weightDecay: 1e-4 },
  clip: 0,
});
const trainer = await Trainer.create(graph, 5, [8, 8, 8, 1]);
const rng = new Rng(21, "memory");
const x = Float32Array.from({ length: 512 }, () => rng.uniform());
for (let i = 0; i < 500; i++) await trainer.step(x, { lr: 0.01 });
const before = Deno.memoryUsage().rss;
for (let i = 0; i < 1000; i++) await trainer.step(x, { lr: 0.01 });
const after = Deno.memoryUsage().rss;
await trainer.release();
console.log(JSON.stringify({ before, after }));
