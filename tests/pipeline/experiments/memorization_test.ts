// The memorization study on a tiny grid: the closed-form ODE (Theorem 1) is the ceiling at 100 %
// memorized with residual 0, held-out real digits the floor at 0 %, every flow checkpoint is
// measured with the hash of the model it exported, and the tables and charts are written.

import assert from "node:assert/strict";
import { memorization } from "../../../pipeline/experiments/memorization.ts";
import type { MemorizationCell } from "../../../pipeline/experiments/memorization.ts";
import { runExperiment } from "../../../pipeline/experiments/run.ts";
import { listNames, withTempDir } from "../../_shared.ts";

Deno.test("memorization: ceiling, floor and a measured point per flow checkpoint", async () => {
  await withTempDir(async (dir) => {
    const config = memorization.resolve({
      experiment: "memorization",
      data: { source: "mnist" },
      memorization: {
        sizes: "32",
        arms: "cfm,efm",
        checkpoints: "2,4",
        samples: 12,
        sampleSteps: 4,
        neighbours: 3,
      },
      flow: { batch: 8, warmup: 1, ema: 0, efmExtra: 8 },
      out: { dir },
    });
    const cells = await runExperiment(memorization, config, { log: () => {}, print: () => {} });
    const by = (arm: string) => cells.find((c) => c.key.arm === arm)!.result as MemorizationCell;
    const [ceiling] = by("closed-form").points;
    assert.equal(ceiling.memorized, 1);
    assert.ok(ceiling.nearest < 1e-3 && ceiling.residual < 1e-3, JSON.stringify(ceiling));
    const [floor] = by("held-out").points;
    assert.equal(floor.memorized, 0);
    assert.ok(floor.nearest > 4, JSON.stringify(floor));
    // A sample's residual on the cone of its k nearest images never exceeds its nearest distance.
    assert.ok(floor.residual <= floor.nearest + 1e-9);
    for (const arm of ["cfm", "efm"]) {
      const points = by(arm).points;
      assert.deepEqual(points.map((p) => p.step), [2, 4]);
      assert.deepEqual(points.map((p) => p.epoch), [0.5, 1]);
      for (const p of points) assert.match(p.model, /^[0-9a-f]{64}$/);
      assert.notEqual(points[0].model, points[1].model);
    }
    const names = await listNames(dir);
    for (
      const f of [
        "memorization.md",
        "memorization.csv",
        "memorization.json",
        "memorization.svg",
        "memorization.png",
        "memorization-epochs.png",
      ]
    ) {
      assert.ok(names.includes(f), `${f} in ${names}`);
    }
  });
});
