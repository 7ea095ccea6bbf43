// A test-only experiment for the queue tests, and a worker process that knows it. A cell is a
// seeded draw from its key plus the first value of its seed's pool (an artifact every cell of the
// seed shares); it takes `ms` milliseconds, and the cells of arm b with a seed in `fail` always
// throw. Run as a script it is `sia worker` with this experiment registered:
//   deno run -A tests/pipeline/queue/_toy.ts --redis URL --name N

import { parseArgs } from "node:util";
import { Rng } from "../../../core/rng.ts";
import { SiaError } from "../../../core/errors.ts";
import { defineExperiment, product } from "../../../pipeline/experiments/experiment.ts";
import type { Codec } from "../../../pipeline/experiments/experiment.ts";
import { EXPERIMENTS } from "../../../pipeline/experiments/registry.ts";
import { runWorker } from "../../../pipeline/queue/worker.ts";
import { listenForStop } from "../../../pipeline/signals.ts";

export interface ToyConfig {
  readonly out: { readonly dir: string };
  readonly toy: {
    readonly seeds: number[];
    readonly ms: number;
    readonly fail: number[];
    readonly offset: number;
    /** Values in each seed's pool (4 bytes each): over queue.inlineBytes it goes to the shared path. */
    readonly pool: number;
  };
}

const POOL_CODEC: Codec<Float32Array> = {
  encode: (pool) =>
    new Uint8Array(pool.buffer.slice(pool.byteOffset, pool.byteOffset + pool.byteLength)),
  decode: (bytes) => new Float32Array(bytes.slice().buffer),
};

export const toy = defineExperiment<ToyConfig, null, { value: number }>({
  name: "toy",
  summary: "a seeded draw per cell (queue tests)",
  unit: "[toy] cells",
  describe: () => [],
  resolve: (raw) => ({ out: raw.out, toy: raw.toy }) as ToyConfig,
  fields: () => ({}),
  outDir: (c) => c.out.dir,
  grid: (c) => product({ arm: ["a", "b"], seed: c.toy.seeds }),
  identity: (c) => ({ offset: c.toy.offset, pool: c.toy.pool }),
  cost: () => 1,
  prepare: () => Promise.resolve(null),
  async run(c, key, context) {
    const seed = Number(key.seed);
    const pool = await context.memo(`pool|${seed}`, () => {
      context.log(`[toy] making pool ${seed}`);
      const rng = new Rng(seed, "pool");
      return Promise.resolve(Float32Array.from({ length: c.toy.pool }, () => rng.uniform()));
    }, POOL_CODEC);
    const until = Date.now() + c.toy.ms;
    while (Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20));
    if (key.arm === "b" && c.toy.fail.includes(seed)) throw new Error(`seed ${seed} always fails`);
    context.tick(1);
    return {
      value: c.toy.offset + pool[pool.length - 1] + new Rng(seed, String(key.arm)).uniform(),
    };
  },
  describeResult: (r) => r.value.toFixed(6),
  async report(_, cells, __, dir) {
    const text = JSON.stringify(cells.map((c) => [c.key, c.config, c.result]));
    await Deno.writeTextFile(`${dir}/toy.json`, text);
    return text;
  },
});

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { redis: { type: "string" }, name: { type: "string" } },
  });
  const signal = listenForStop();
  let code: number;
  try {
    code = await runWorker({
      url: values.redis!,
      queue: "sia",
      name: values.name!,
      experiments: { ...EXPERIMENTS, toy },
      log: (line) => console.error(line),
      stop: signal.stop,
    });
  } catch (e) {
    console.error(`sia: ${e instanceof Error ? e.message : e}`);
    code = e instanceof SiaError ? e.exitCode : 1;
  }
  Deno.exit(code);
}
