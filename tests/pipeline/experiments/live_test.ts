// The progress files the results view reads: a cell's curve stays within CURVE_POINTS points
// however many steps it runs (every kept point on the doubled stride, the last stride's points
// all there), the file ends with the cell's state, and a run writes the grid (experiment.json)
// and one progress file per trained cell that ends "done" at the cell's cost.

import assert from "node:assert/strict";
import { CellTracker, CURVE_POINTS } from "../../../pipeline/experiments/live.ts";
import type { CellProgress, Plan } from "../../../pipeline/experiments/live.ts";
import { defineExperiment, product } from "../../../pipeline/experiments/experiment.ts";
import { runExperiment } from "../../../pipeline/experiments/run.ts";
import { withTempDir } from "../../_cli.ts";

const read = async (path: string) => JSON.parse(await Deno.readTextFile(path));

Deno.test("live: a long cell's curve is thinned to at most CURVE_POINTS, on a doubling stride", async () => {
  await withTempDir(async (dir) => {
    const steps = 5000;
    const tracker = new CellTracker(dir, { arm: "a", seed: 0 }, steps);
    await tracker.start();
    for (let s = 1; s <= steps; s++) tracker.tick(1, { loss: 1 / s, lr: 0.1, codeEntropy: NaN });
    await tracker.end("done");
    const p: CellProgress = await read(`${dir}/progress/a__seed0.json`);
    assert.equal(p.state, "done");
    assert.equal(p.step, steps);
    assert.equal(p.total, steps);
    // 5000 steps over 512 points: the stride doubled to 16 (5000 / 8 = 625 > 512 >= 5000 / 16).
    assert.equal(p.curve.length, Math.floor(steps / 16));
    assert.ok(p.curve.length <= CURVE_POINTS);
    assert.ok(p.curve.every((point, i) => point.step === 16 * (i + 1)));
    assert.equal(p.curve[9].loss, 1 / 160);
    // A non-finite metric is left out rather than written as null.
    assert.deepEqual(Object.keys(p.metrics).sort(), ["loss", "lr"]);
  });
});

Deno.test("live: a run writes its grid and a done progress file per trained cell", async () => {
  await withTempDir(async (dir) => {
    const experiment = defineExperiment<{ dir: string }, null, { value: number }>({
      name: "toy",
      summary: "",
      unit: "[toy] steps",
      describe: () => [],
      resolve: (raw) => raw as { dir: string },
      fields: () => ({}),
      outDir: (c) => c.dir,
      grid: () => product({ arm: ["a", "b"], seed: [0, 1] }),
      identity: () => ({}),
      cost: (_, key) => (key.arm === "a" ? 3 : 5),
      prepare: () => Promise.resolve(null),
      run(_, key, context) {
        const steps = key.arm === "a" ? 3 : 5;
        for (let s = 1; s <= steps; s++) context.tick(1, { loss: s });
        return Promise.resolve({ value: steps });
      },
      describeResult: (r) => String(r.value),
      report: () => Promise.resolve(""),
    });
    await runExperiment(experiment, { dir }, { log: () => {}, print: () => {} });
    const plan: Plan = await read(`${dir}/experiment.json`);
    assert.equal(plan.experiment, "toy");
    assert.deepEqual(plan.cells.map((c) => [c.file, c.cost]), [
      ["a__seed0", 3],
      ["a__seed1", 3],
      ["b__seed0", 5],
      ["b__seed1", 5],
    ]);
    for (const { file, cost } of plan.cells) {
      const p: CellProgress = await read(`${dir}/progress/${file}.json`);
      assert.equal(p.state, "done");
      assert.equal(p.step, cost);
      assert.deepEqual(p.curve.map((q) => q.loss), [...Array(cost)].map((_, i) => i + 1));
    }
  });
});
