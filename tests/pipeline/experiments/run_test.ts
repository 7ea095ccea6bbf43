// The experiment layer on a toy experiment (a cell's result is a seeded draw from its key): every
// cell stored once, a resumed run computes only the missing cells and gives the same bytes, a cell
// stored under another config is an error, a stop keeps finished cells (exit 130), and the
// aggregation equals a hand computation on a small grid.

import assert from "node:assert/strict";
import { Rng } from "../../../core/rng.ts";
import { SiaError } from "../../../core/errors.ts";
import { difference, findGroup, groupCells } from "../../../pipeline/experiments/aggregate.ts";
import {
  cellFileName,
  cellLabel,
  defineExperiment,
  product,
} from "../../../pipeline/experiments/experiment.ts";
import type { StoredCell } from "../../../pipeline/experiments/experiment.ts";
import { runExperiment } from "../../../pipeline/experiments/run.ts";
import { parseSeeds } from "../../../pipeline/experiments/shared.ts";
import { withTempDir } from "../../_cli.ts";
import { listNames } from "../../_shared.ts";

interface Toy {
  dir: string;
  offset: number;
  seeds: number[];
}

function toy(runs: string[], stopAfter = Infinity) {
  let stop = () => {};
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const experiment = defineExperiment<Toy, null, { value: number }>({
    name: "toy",
    summary: "a seeded draw per cell",
    unit: "[toy] cells",
    describe: () => [],
    resolve: (raw) => raw as unknown as Toy,
    fields: () => ({}),
    outDir: (c) => c.dir,
    grid: (c) => product({ arm: ["a", "b"], seed: c.seeds }),
    identity: (c) => ({ offset: c.offset }),
    cost: () => 1,
    prepare: () => Promise.resolve(null),
    run(c, key, context) {
      runs.push(cellLabel(key));
      context.tick(1);
      if (runs.length >= stopAfter) stop();
      const value = c.offset + new Rng(Number(key.seed), String(key.arm)).uniform();
      return Promise.resolve({ value });
    },
    describeResult: (r) => r.value.toFixed(3),
    async report(_, cells, __, dir) {
      const text = JSON.stringify(cells.map((c) => [c.key, c.result]));
      await Deno.writeTextFile(`${dir}/toy.json`, text);
      return text;
    },
  });
  return { experiment, stopped };
}

const quiet = { log: () => {}, print: () => {} };

Deno.test("cells are stored once; a resumed run computes only the missing cells, same bytes", async () => {
  await withTempDir(async (dir) => {
    const config: Toy = { dir, offset: 0, seeds: [0, 1, 2] };
    const runs: string[] = [];
    await runExperiment(toy(runs).experiment, config, quiet);
    assert.equal(runs.length, 6);
    const whole = await Deno.readTextFile(`${dir}/toy.json`);
    assert.deepEqual(
      await listNames(`${dir}/cells`),
      [
        "a__seed0.json",
        "a__seed1.json",
        "a__seed2.json",
        "b__seed0.json",
        "b__seed1.json",
        "b__seed2.json",
      ],
    );
    await Deno.remove(`${dir}/cells/b__seed1.json`);
    await Deno.remove(`${dir}/toy.json`);
    const again: string[] = [];
    await runExperiment(toy(again).experiment, config, quiet);
    assert.deepEqual(again, ["b / seed 1"]);
    assert.equal(await Deno.readTextFile(`${dir}/toy.json`), whole);
    // Another config's cells are not reused.
    await assert.rejects(
      () => runExperiment(toy([]).experiment, { ...config, offset: 1 }, quiet),
      (e) => e instanceof SiaError && /computed under another config/.test(e.message),
    );
  });
});

Deno.test("a stop keeps the finished cells and exits 130; the rerun completes", async () => {
  await withTempDir(async (dir) => {
    const config: Toy = { dir, offset: 0, seeds: [0, 1] };
    const runs: string[] = [];
    const { experiment, stopped } = toy(runs, 2);
    await assert.rejects(
      () => runExperiment(experiment, config, { ...quiet, stop: stopped }),
      (e) =>
        e instanceof SiaError && e.exitCode === 130 &&
        /^interrupted: 2 finished cells kept in .*\/cells; run the same command to resume$/.test(
          e.message,
        ),
    );
    assert.equal((await listNames(`${dir}/cells`)).length, 2);
    const rest: string[] = [];
    await runExperiment(toy(rest).experiment, config, quiet);
    assert.deepEqual(rest, ["b / seed 0", "b / seed 1"]);
  });
});

Deno.test("aggregation equals a hand computation: groups over seeds, paired differences", () => {
  const values: Record<string, number[]> = { a: [80, 82, 84], b: [79, 80, 84] };
  const cells: StoredCell<{ value: number }>[] = product({ arm: ["a", "b"], seed: [0, 1, 2] })
    .map((key) => ({
      experiment: "toy",
      key,
      config: "",
      result: { value: values[String(key.arm)][Number(key.seed)] },
      seconds: 0,
    }));
  const groups = groupCells(cells, (r) => r.value);
  const a = findGroup(groups, { arm: "a" })!;
  // mean 82, sd 2, half-width t(0.975, 2) * 2 / sqrt(3) = 4.302653 * 1.154701 = 4.968275.
  assert.deepEqual([a.mean, a.sd, a.n], [82, 2, 3]);
  assert.ok(Math.abs(a.hi - 82 - 4.968275) < 1e-5);
  const d = difference(a, findGroup(groups, { arm: "b" })!);
  // Differences 1, 2, 0: mean 1, sd 1, half-width 4.302653 / sqrt(3) = 2.484138.
  assert.deepEqual(d.differences, [1, 2, 0]);
  assert.deepEqual([d.mean, d.sd, d.above, d.below, d.ties], [1, 1, 2, 0, 1]);
  assert.ok(Math.abs(d.lo - (1 - 2.484138)) < 1e-5 && Math.abs(d.hi - (1 + 2.484138)) < 1e-5);
});

Deno.test("cell names and seeds: file-safe names, lists and counts", () => {
  assert.equal(
    cellFileName({ learner: "simclr", arm: "generated:closed-form", seed: 2 }),
    "simclr__generated_closed-form__seed2",
  );
  assert.deepEqual(parseSeeds("0,1,2", "s"), [0, 1, 2]);
  assert.deepEqual(parseSeeds("3x", "s"), [0, 1, 2]);
  assert.deepEqual(parseSeeds("7", "s"), [7]);
  assert.throws(() => parseSeeds("0,a", "s"), /s: expected a comma list/);
  assert.throws(() => parseSeeds("1,1", "s"), /listed twice/);
});
