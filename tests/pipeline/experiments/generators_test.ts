// The generators comparison on a tiny config: the exact closed form copies (copy rate 100 %, Z far
// below 0) where the held-out null does not; smoothed at sigma_s = 0 is the closed form, metric for
// metric; a patch mosaic creates (no copies); every table file and sample grid is written, and a
// rerun reports the same table from the stored cells; the new stages are columns of Tables 1/2
// and arms of Table 3 by config; the trained-flow row trains on T alone, once per data set, and a
// cell recomputed from the stored model gives the same metrics without training again.

import assert from "node:assert/strict";
import { generators, resolveGeneratorsConfig } from "../../../pipeline/experiments/generators.ts";
import type { GeneratorsCell } from "../../../pipeline/experiments/generators.ts";
import { runExperiment } from "../../../pipeline/experiments/run.ts";
import type { StoredCell } from "../../../pipeline/experiments/experiment.ts";
import { resolveTable3Config } from "../../../pipeline/experiments/table3.ts";
import { resolveTables12Config } from "../../../pipeline/experiments/tables12.ts";
import { sha256Hex } from "../../../core/files.ts";
import { PNG_SIGNATURE } from "../../../core/plot/png.ts";
import { listNames, withTempDir } from "../../_shared.ts";

const STAGES = {
  smoothed: { sigmaS: 1, draws: 2 },
  mosaic: { patch: "schedule" },
  kernel: { p: 2 },
};

Deno.test("generators: the closed form copies, the null does not, smoothed at sigma_s = 0 is the closed form, the mosaic creates", async () => {
  await withTempDir(async (dir) => {
    const config = resolveGeneratorsConfig({
      experiment: "generators",
      data: { balanced: true },
      compare: {
        datasets: "mnist",
        train: 60,
        hidden: 30,
        samples: 20,
        denoiseImages: 5,
        classifierSteps: 20,
        gridSide: 3,
      },
      generators: {
        ode: { generator: "closed-form", params: { sampler: "ode", steps: 20, engine: "exact" } },
        zero: {
          generator: "smoothed",
          params: {
            sampler: "ode",
            steps: 20,
            sigmaS: 0,
            draws: 2,
            mode: "fresh",
            engine: "exact",
          },
        },
        mosaic: {
          generator: "mosaic",
          params: { steps: 10, patch: "schedule", patchStart: 7, patchEnd: 3 },
        },
      },
      out: { dir },
    });
    const cells = await runExperiment(generators, config, {
      log: () => {},
      print: () => {},
    }) as StoredCell<GeneratorsCell>[];
    const by = (label: string) => cells.find((c) => c.key.generator === label)!.result;
    const [ode, zero, mosaic, held] = [by("ode"), by("zero"), by("mosaic"), by("held-out")];
    assert.equal(ode.copyRate, 1);
    assert.ok(ode.z < -3 && ode.nearest < 1e-3, `ode Z ${ode.z}, nearest ${ode.nearest}`);
    assert.equal(held.copyRate, 0);
    assert.ok(Math.abs(held.z) < 2, `null Z ${held.z}`);
    for (const k of ["copyRate", "z", "denoiseError", "nearest", "fidelity"] as const) {
      assert.equal(zero[k], ode[k], k);
    }
    assert.ok(held.denoiseError === null && Number.isFinite(ode.denoiseError));
    // Measured: 0 copies, Z near the null's, NN distance near the held-out images'.
    assert.ok(mosaic.copyRate <= 0.1, `mosaic copy rate ${mosaic.copyRate}`);
    assert.ok(mosaic.nearest > 0.5 * held.nearest, `${mosaic.nearest} vs ${held.nearest}`);
    for (const file of ["generators.md", "generators.csv", "generators.json"]) {
      assert.ok((await Deno.stat(`${dir}/${file}`)).size > 0, file);
    }
    const grids = await listNames(`${dir}/grids`);
    assert.deepEqual(grids, [
      "mnist__held-out.png",
      "mnist__mosaic.png",
      "mnist__ode.png",
      "mnist__zero.png",
    ]);
    const png = await Deno.readFile(`${dir}/grids/mnist__mosaic.png`);
    assert.deepEqual(png.subarray(0, 8), PNG_SIGNATURE);
    // A rerun reports from the stored cells (where n/a is null, JSON having no NaN): same table.
    const table = await Deno.readTextFile(`${dir}/generators.md`);
    await Deno.remove(`${dir}/generators.md`);
    await runExperiment(generators, config, { log: () => {}, print: () => {} });
    assert.equal(await Deno.readTextFile(`${dir}/generators.md`), table);
  });
});

Deno.test("smoothed, mosaic and kernel are Table 3 arms and Tables 1/2 columns by config", () => {
  const t3 = resolveTable3Config({
    experiment: "table3",
    generators: STAGES,
    out: { dir: "unused" },
  });
  assert.deepEqual(Object.keys(t3.generators), ["smoothed", "mosaic", "kernel"]);
  assert.equal(t3.generators.smoothed.sigmaS, 1);
  const t12 = resolveTables12Config({
    experiment: "tables12",
    generators: Object.fromEntries(
      Object.entries(STAGES).map((
        [stage, params],
      ) => [`my-${stage}`, { generator: stage, params }]),
    ),
    out: { dir: "unused" },
  });
  assert.deepEqual(Object.values(t12.generators).map((g) => g.stage), [
    "smoothed",
    "mosaic",
    "kernel",
  ]);
  assert.equal(t12.generators["my-kernel"].params.p, 2);
});

Deno.test("generators: the trained-flow row trains on T alone, once, and reruns to the same cell", async () => {
  await withTempDir(async (dir) => {
    const raw = {
      experiment: "generators",
      data: { balanced: true },
      compare: {
        datasets: "mnist",
        train: 40,
        hidden: 20,
        samples: 6,
        denoiseImages: 2,
        classifierSteps: 5,
        gridSide: 2,
      },
      generators: { noise: { generator: "noise", params: {} } },
      flow: {
        train: { steps: 3, batch: 8, every: 3, evalEvery: 3 },
        sample: { sampler: "ode", steps: 2 },
      },
      out: { dir },
    };
    assert.throws(
      () =>
        resolveGeneratorsConfig({
          ...raw,
          generators: { "trained-flow": { generator: "noise", params: {} } },
        }),
      /generators\.trained-flow: is the flow row's name/,
    );
    const config = resolveGeneratorsConfig(raw);
    const lines: string[] = [];
    const run = async () =>
      (await runExperiment(generators, config, {
        log: (line) => lines.push(line),
        print: () => {},
      }) as StoredCell<GeneratorsCell>[]).find((c) => c.key.generator === "trained-flow")!.result;
    const first = await run();
    const [flow] = await listNames(`${dir}/flows`);
    const record = JSON.parse(await Deno.readTextFile(`${dir}/flows/${flow}/train.json`));
    // Trained on T's 40 images, not the whole split; its samples carry no class (unconditional).
    assert.equal(record.data.images, 40);
    assert.equal(first.fidelity, null);
    assert.equal(first.denoiseError, null);
    assert.equal(first.samples, 6);
    assert.equal(
      first.facts.modelSha256,
      await sha256Hex(await Deno.readFile(`${dir}/flows/${flow}/flow.onnx`)),
    );
    // The cell recomputed from the stored model: no second training, the same metrics.
    await Deno.remove(`${dir}/progress/mnist__trained-flow.json`);
    lines.length = 0;
    const again = await run();
    assert.ok(!lines.some((l) => l.includes("training the mnist flow")), lines.join("\n"));
    for (const k of ["copyRate", "z", "nearest"] as const) assert.equal(again[k], first[k], k);
  });
});
