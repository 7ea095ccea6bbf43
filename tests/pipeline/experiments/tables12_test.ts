// Tables 1 and 2 on a tiny grid: each setting trains on exactly the intended images (counted by
// provenance), no test image enters training or a generator (the trained flow's own record of the
// ids it read included), a flow is trained once per fit however many columns sample it, a resumed
// run (interrupted inside a flow's training) writes the same bytes as an uninterrupted one, and
// config mistakes are one-line errors; --set keeps a string a string.

import assert from "node:assert/strict";
import { SiaError } from "../../../core/errors.ts";
import { Provenance } from "../../../core/batch.ts";
import { runExperiment } from "../../../pipeline/experiments/run.ts";
import type { StoredCell } from "../../../pipeline/experiments/experiment.ts";
import { memoCache } from "../../../pipeline/experiments/run.ts";
import { applyExperimentSet } from "../../../pipeline/experiments/shared.ts";
import { sha256Hex } from "../../../core/files.ts";
import { listNames } from "../../_shared.ts";
import {
  resolveTables12Config,
  settings,
  tables12,
  trainingSet,
} from "../../../pipeline/experiments/tables12.ts";
import type { Tables12Cell } from "../../../pipeline/experiments/tables12.ts";
import { loadSplits } from "../../../stages/load/resolve.ts";
import { subset } from "../../../stages/load/dataset.ts";
import { runCli, withTempDir } from "../../_cli.ts";

const FLOW_TRAIN = { steps: 2, batch: 8, warmup: 0, evalEvery: 2, every: 2 };

/** Ids as the bytes train-flow hashes into its train.json. */
const idsHash = (ids: Int32Array) =>
  sha256Hex(new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength));

function tiny(dir: string, extra: Record<string, unknown> = {}) {
  return resolveTables12Config({
    experiment: "tables12",
    tables12: {
      datasets: "mnist",
      sizes: "20",
      seeds: "2x",
      steps: 4,
      batch: 8,
      widths: "4,8,8",
      hidden: 8,
      test: 50,
    },
    generators: {
      sde: { generator: "closed-form", params: { sampler: "sde", steps: 3 } },
      noise: {},
      // Two columns sampling one trained flow (ODE and SDE): one training per fit serves both.
      flow: { generator: "trained-flow", params: { train: FLOW_TRAIN, sample: { steps: 2 } } },
      "flow-sde": {
        generator: "trained-flow",
        params: { train: FLOW_TRAIN, sample: { sampler: "sde", steps: 2 } },
      },
    },
    out: { dir },
    ...extra,
  });
}

Deno.test("the five settings see exactly n/2 or n real images and n/2 generated or noised; no test id", async () => {
  await withTempDir(async (dir) => {
    const config = tiny(dir);
    assert.deepEqual(settings(config), [
      "half",
      "generated:sde",
      "generated:noise",
      "generated:flow",
      "generated:flow-sde",
      "full-generated:sde",
      "full-generated:noise",
      "full-generated:flow",
      "full-generated:flow-sde",
      "noised",
      "full",
    ]);
    const splits = await loadSplits("mnist", config.data);
    const trainIds = new Set(splits.train.ids);
    const testIds = new Set(subset(splits.test!, 50, false, 0).ids);
    const n = 40;
    const want: Record<string, [number, number, number]> = {
      half: [20, 0, 0],
      full: [40, 0, 0],
      "generated:sde": [20, 20, 0],
      "full-generated:sde": [20, 20, 0],
      "generated:flow": [20, 20, 0],
      "full-generated:flow": [20, 20, 0],
      "generated:flow-sde": [20, 20, 0],
      "full-generated:flow-sde": [20, 20, 0],
      // The noise stage as a generator column makes noised images.
      "generated:noise": [20, 0, 20],
      "full-generated:noise": [20, 0, 20],
      noised: [20, 0, 20],
    };
    const all = subset(splits.train, n, true, 1);
    const half = subset(all, n / 2, true, 1).ids;
    // The context's memo, counting what it is asked for and what it makes.
    const cache = memoCache(4);
    const made: string[] = [];
    const trainings: string[] = [];
    const context = {
      log: (line: string) => void (/training a flow/.test(line) && trainings.push(line)),
      stop: new Promise<void>(() => {}),
      memo: <T>(id: string, make: () => Promise<T>) => cache(id, () => (made.push(id), make())),
    };
    const models: Record<string, string> = {};
    const pools: Record<string, string> = {};
    for (const setting of settings(config)) {
      const { set, fit, model } = await trainingSet(
        config,
        { dataset: "mnist", n, setting, seed: 1 },
        splits.train,
        context,
      );
      const count = (p: number) => set.provenance.filter((v) => v === p).length;
      assert.deepEqual(
        [count(Provenance.real), count(Provenance.generated), count(Provenance.noised)],
        want[setting],
        setting,
      );
      // Every image is labelled, every real image is from the training split and not a test one.
      assert.ok(set.labels.every((l) => l >= 0 && l < 10), setting);
      const real = set.ids.filter((_, i) => set.provenance[i] === Provenance.real);
      assert.ok(real.every((id) => trainIds.has(id) && !testIds.has(id)), setting);
      // The real half is the same in every mixed setting; the generator saw the half or all n.
      if (setting !== "full") assert.deepEqual([...real].sort(), [...half].sort(), setting);
      assert.ok(fit.every((id) => trainIds.has(id) && !testIds.has(id)), setting);
      assert.equal(
        fit.length,
        setting.startsWith("full-") ? n : setting === "half" || setting === "full" ? 0 : n / 2,
      );
      assert.equal(model !== undefined, setting.includes(":flow"), setting);
      if (model) {
        models[setting] = model;
        const generated = set.images.subarray(set.images.length / 2);
        pools[setting] = await sha256Hex(new Uint8Array(generated.buffer, generated.byteOffset));
      }
    }
    // One training per fit (the half, all n), made once through the memo, for four columns.
    assert.equal(trainings.length, 2, trainings.join("\n"));
    assert.equal(made.length, 2);
    assert.equal(new Set(made).size, 2);
    const flows = await listNames(`${dir}/flows`);
    assert.equal(flows.length, 2);
    // The ODE and SDE columns of a fit sample one model into different pools; the fits differ.
    assert.equal(models["generated:flow"], models["generated:flow-sde"]);
    assert.equal(models["full-generated:flow"], models["full-generated:flow-sde"]);
    assert.notEqual(models["generated:flow"], models["full-generated:flow"]);
    assert.notEqual(pools["generated:flow"], pools["generated:flow-sde"]);
    // What each flow read, by train-flow's own record: exactly the half's ids or all n's, so the
    // half's flow never saw the other half, and neither saw a test image.
    const read: Record<string, { images: number; idsSha256: string }> = {};
    for (const name of flows) {
      const record = JSON.parse(await Deno.readTextFile(`${dir}/flows/${name}/train.json`));
      read[record.data.images] = record.data;
      const onnx = await sha256Hex(await Deno.readFile(`${dir}/flows/${name}/flow.onnx`));
      assert.equal(
        onnx,
        models[record.data.images === n ? "full-generated:flow" : "generated:flow"],
      );
    }
    assert.equal(read[n / 2].idsSha256, await idsHash(half));
    assert.equal(read[n].idsSha256, await idsHash(all.ids));
    assert.ok([...all.ids].every((id) => !testIds.has(id)));
  });
});

Deno.test("a resumed Tables 1/2 run writes the same bytes as an uninterrupted one", async () => {
  await withTempDir(async (tmp) => {
    const quiet = { log: () => {}, print: () => {} };
    const files = ["tables12.md", "tables12.csv", "tables12.json", "tables12.svg", "tables12.png"];
    await runExperiment(tables12, tiny(`${tmp}/a`), quiet);
    const whole = await Promise.all(files.map((f) => Deno.readFile(`${tmp}/a/${f}`)));
    const md = new TextDecoder().decode(whole[0]);
    assert.match(md, /\| 20 \| .* \| n\/a \| n\/a \| n\/a \|/);
    assert.match(md, /generated:sde - noised/);
    // One flow per (seed, fit), each recorded in its cells.
    const json = JSON.parse(new TextDecoder().decode(whole[2]));
    assert.ok(json.rows.some((r: { setting: string }) => r.setting === "full-generated:flow"));
    assert.equal((await listNames(`${tmp}/a/flows`)).length, 4);
    assert.equal(new Set(json.models.map((m: { model: string }) => m.model)).size, 4);
    // The report names every model by its hash.
    for (const m of json.models) assert.ok(md.includes(m.model.slice(0, 16)), m.setting);
    // An interruption inside the first flow's training (after 6 cells); the rerun resumes it from
    // its checkpoint and does the rest.
    let stop = () => {};
    let cellsDone = 0;
    const stopped = new Promise<void>((resolve) => (stop = resolve));
    await assert.rejects(
      () =>
        runExperiment(tables12, tiny(`${tmp}/b`), {
          log: (line) => {
            if (/: accuracy/.test(line)) cellsDone++;
            if (/training a flow/.test(line)) stop();
          },
          print: () => {},
          stop: stopped,
        }),
      (e) => e instanceof SiaError && e.exitCode === 130,
    );
    assert.equal(cellsDone, 6);
    const rest = await runExperiment(tables12, tiny(`${tmp}/b`), quiet);
    for (const [i, f] of files.entries()) {
      assert.deepEqual(await Deno.readFile(`${tmp}/b/${f}`), whole[i], f);
    }
    // The flow cells name their model: the same four models in both runs.
    const flowModels = (c: StoredCell<Tables12Cell>[]) =>
      new Set(c.flatMap((c) => (c.result.model ? [c.result.model] : [])));
    assert.equal(flowModels(rest as StoredCell<Tables12Cell>[]).size, 4);
    for (const name of await listNames(`${tmp}/a/flows`)) {
      assert.deepEqual(
        await Deno.readFile(`${tmp}/b/flows/${name}/flow.onnx`),
        await Deno.readFile(`${tmp}/a/flows/${name}/flow.onnx`),
        name,
      );
    }
  });
});

Deno.test("tables12 config: unknown data sets, odd sizes and stray keys are errors that name the key", () => {
  const bad = (tables12: Record<string, unknown>, pattern: RegExp) =>
    assert.throws(
      () => resolveTables12Config({ experiment: "tables12", tables12, out: { dir: "x" } }),
      (e) => e instanceof SiaError && pattern.test(e.message),
    );
  bad(
    { datasets: "mnist,fashion-mnst" },
    /tables12\.datasets: unknown data set "fashion-mnst" \(did you mean "fashion-mnist"\?\)/,
  );
  bad({ sizes: "100,101" }, /tables12\.sizes: a size is an even number/);
  bad({ seeds: "0,x" }, /tables12\.seeds: expected a comma list/);
  assert.throws(
    () =>
      resolveTables12Config({
        experiment: "tables12",
        generators: { ode: { generator: "closed-frm" } },
        out: { dir: "x" },
      }),
    (e) => e instanceof SiaError && /did you mean "closed-form"/.test(e.message),
  );
});

Deno.test('--set on an experiment: the schema types the value (a string-typed 0 stays "0")', async () => {
  const raw: Record<string, unknown> = { experiment: "tables12" };
  const fields = tables12.fields(raw);
  applyExperimentSet(raw, "tables12.seeds=0", fields);
  applyExperimentSet(raw, "tables12.steps=7", fields);
  applyExperimentSet(raw, "generators.ode.params.steps=9", fields);
  assert.deepEqual(raw.tables12, { seeds: "0", steps: 7 });
  assert.deepEqual(raw.generators, { ode: { params: { steps: 9 } } });
  assert.throws(
    () => applyExperimentSet(raw, "tables12.step=7", fields),
    /did you mean "tables12\.steps"/,
  );
  assert.throws(() => applyExperimentSet(raw, "tables12.steps=x", fields), /expected an integer/);
  // A trained flow's column takes its train-flow and sampling keys under params.train / .sample.
  const flow: Record<string, unknown> = {
    experiment: "tables12",
    generators: { flow: { generator: "trained-flow" } },
  };
  applyExperimentSet(flow, "generators.flow.params.train.steps=5", tables12.fields(flow));
  applyExperimentSet(flow, "generators.flow.params.sample.sampler=sde", tables12.fields(flow));
  assert.deepEqual(flow.generators, {
    flow: {
      generator: "trained-flow",
      params: { train: { steps: 5 }, sample: { sampler: "sde" } },
    },
  });
  assert.throws(
    () =>
      resolveTables12Config({
        experiment: "tables12",
        generators: { flow: { generator: "trained-flow", params: { trian: {} } } },
        out: { dir: "x" },
      }),
    (e) =>
      e instanceof SiaError &&
      /generators\.flow\.params\.trian: unknown key \(did you mean "train"\?\)/.test(e.message),
  );
  // Through the CLI, the measured failure: table3.seeds=0 is the string "0"; the run then stops at
  // the next bad key, which shows the seeds passed.
  const result = await runCli([
    "pipeline",
    "--config",
    "configs/table3.quick.json",
    "--set",
    "table3.seeds=0",
    "--set",
    "table3.learners=mocco",
  ]);
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /table3\.learners: unknown learner "mocco"/);
  assert.doesNotMatch(result.stderr, /seeds/);
});
