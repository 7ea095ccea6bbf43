// Table 3 on the experiment layer, on a tiny config: every file with the right cells, a resumed
// run (some cells deleted, as after an interruption) produces the same table as the uninterrupted
// one, the seeds' numbers are those of the runner before the move, and Ctrl-C keeps finished cells.

import assert from "node:assert/strict";
import { resolveTable3Config, table3 } from "../../../pipeline/experiments/table3.ts";
import type { Table3Cell } from "../../../pipeline/experiments/table3.ts";
import { runExperiment } from "../../../pipeline/experiments/run.ts";
import type { RunOptions, StoredCell } from "../../../pipeline/experiments/experiment.ts";
import { SiaError } from "../../../core/errors.ts";
import { exists, runCli, spawnCli, withTempDir } from "../../_cli.ts";
import { listNames } from "../../_shared.ts";

function tiny(dir: string) {
  return resolveTable3Config({
    experiment: "table3",
    seed: 0,
    data: { source: "mnist", size: 300 },
    table3: {
      learners: "simclr,moco,simsiam,swav",
      seeds: "0",
      steps: 3,
      batch: 8,
      dim: 16,
      pool: 32,
      probeTrain: 250,
      probeTest: 100,
      mocoQueue: 16,
      swavPrototypes: 6,
    },
    generators: { "closed-form": { sampler: "sde", steps: 5 } },
    noise: { r: 1, s: 0.05 },
    out: { dir },
  });
}

const quiet = { log: () => {}, print: () => {} };

const runTable3 = (config: ReturnType<typeof tiny>, options: RunOptions) =>
  runExperiment(table3, config, options) as Promise<StoredCell<Table3Cell>[]>;

Deno.test("table3 runner: every cell, every file; a resumed run gives the same table", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cells = await runTable3(tiny(dir), quiet);
    // 4 learners x 3 arms + the random-init floor.
    assert.equal(cells.length, 13);
    for (const learner of ["simclr", "moco", "simsiam", "swav"]) {
      for (const arm of ["baseline", "generated:closed-form", "noised"]) {
        const cell = cells.find((c) => c.key.learner === learner && c.key.arm === arm)!.result;
        assert.ok(
          cell && cell.steps === 3 && cell.testImages === 100 && Number.isFinite(cell.finalLoss),
        );
        assert.ok(cell.linear >= 0 && cell.linear <= 1 && cell.knn >= 0 && cell.knn <= 1);
      }
    }
    for (const file of ["table3.md", "table3.csv", "table3.json", "table3.svg", "table3.png"]) {
      assert.ok((await Deno.stat(`${dir}/${file}`)).size > 0, file);
    }
    const first = JSON.parse(await Deno.readTextFile(`${dir}/table3.json`));
    // An interruption: two finished cells and the tables lost.
    await Deno.remove(`${dir}/cells/moco__noised__seed0.json`);
    await Deno.remove(`${dir}/cells/simclr__baseline__seed0.json`);
    await Deno.remove(`${dir}/table3.json`);
    const lines: string[] = [];
    const again = await runTable3(tiny(dir), {
      ...quiet,
      progress: { tty: false, logEvery: 1e9, write: (text) => lines.push(text) },
    });
    assert.equal(again.length, 13);
    // Only the two lost cells were trained again: 2 x 3 steps.
    assert.match(lines.at(-1)!, /^\[sia\] \[table3\] steps 6 items in .*, 2 cells trained\n$/);
    const second = JSON.parse(await Deno.readTextFile(`${dir}/table3.json`));
    const strip = (rows: { learner: string; arm: string; metric: string; values: number[] }[]) =>
      rows.map(({ learner, arm, metric, values }) => ({ learner, arm, metric, values }));
    assert.deepEqual(strip(second.rows), strip(first.rows));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("table3 config: unknown learners and keys are errors that suggest", () => {
  assert.throws(
    () =>
      resolveTable3Config({
        experiment: "table3",
        table3: { learners: "simclr,mocco" },
        out: { dir: "x" },
      }),
    (e) =>
      e instanceof SiaError && /unknown learner "mocco" \(did you mean "moco"\?\)/.test(e.message),
  );
  assert.throws(
    () => resolveTable3Config({ experiment: "table3", table3: { stepz: 3 }, out: { dir: "x" } }),
    (e) =>
      e instanceof SiaError &&
      /table3\.stepz: unknown key \(did you mean "table3\.steps"\?\)/.test(e.message),
  );
  assert.throws(
    () =>
      resolveTable3Config({
        experiment: "table3",
        generators: { "closed-frm": {} },
        out: { dir: "x" },
      }),
    (e) => e instanceof SiaError && /did you mean "closed-form"/.test(e.message),
  );
});

Deno.test("table3 CLI: Ctrl-C exits 130 with one line, keeps finished cells, and the rerun completes", async () => {
  await withTempDir(async (tmp) => {
    const config = `${tmp}/table3.json`;
    await Deno.writeTextFile(
      config,
      JSON.stringify({
        experiment: "table3",
        data: { source: "mnist", size: 300 },
        table3: {
          learners: "simclr",
          steps: 40,
          batch: 8,
          dim: 16,
          pool: 32,
          probeTrain: 250,
          probeTest: 100,
        },
        generators: { "closed-form": { sampler: "sde", steps: 5 } },
        out: { dir: `${tmp}/out` },
      }),
    );
    const args = ["pipeline", "--config", config];
    const child = spawnCli(args);
    const output = child.output();
    let exited = false;
    output.then(() => (exited = true), () => (exited = true));
    const deadline = Date.now() + 120_000;
    // The floor and the first trained cell are saved: Ctrl-C during the second.
    while (!(await exists(`${tmp}/out/cells/simclr__baseline__seed0.json`))) {
      assert.ok(!exited, "the run ended before its first cell");
      assert.ok(Date.now() < deadline, "no cell after 120 s");
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    child.kill("SIGINT");
    const result = await output;
    const stderr = new TextDecoder().decode(result.stderr);
    assert.equal(result.code, 130, stderr);
    assert.match(
      stderr.trimEnd().split("\n").at(-1)!,
      /^sia: interrupted: \d+ finished cells kept in .*\/out\/cells; run the same command to resume$/,
    );
    const kept = await listNames(`${tmp}/out/cells`);
    assert.ok(kept.includes("simclr__baseline__seed0.json") && kept.length < 4, `${kept}`);
    assert.ok(kept.every((n) => n.endsWith(".json")), `no temporary files: ${kept}`);
    assert.ok(!(await exists(`${tmp}/out/table3.md`)));
    const rerun = await runCli(args);
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.match(rerun.stderr, /simclr \/ baseline \/ seed 0: done before/);
    assert.equal((await listNames(`${tmp}/out/cells`)).length, 4);
    assert.ok(await exists(`${tmp}/out/table3.md`));
  });
});

Deno.test("table3 report: md, csv, json with every row, the paper beside; svg and png chart", async () => {
  await withTempDir(async (dir) => {
    const config = tiny(dir);
    const arms = ["baseline", "generated:closed-form", "noised"];
    const cells = ["simclr", "moco"].flatMap((learner) =>
      arms.map((arm, i) => ({
        experiment: "table3",
        key: { learner, arm, seed: 0 },
        config: "",
        result: {
          linear: 0.7 + 0.01 * i,
          knn: 0.68 + 0.01 * i,
          testImages: 100,
          steps: 3,
          finalLoss: 1,
        },
        seconds: 1,
      }))
    );
    const shape = [300, 28, 28, 1] as const;
    const data = { source: "mnist", shape } as unknown as import("../../../core/batch.ts").Dataset;
    const shared = {
      train: data,
      probes: { encoder: [], input: [28, 28, 1], train: data, test: data },
    };
    const md = await table3.report(config, cells, shared as never, dir);
    assert.equal(md.split("\n").filter((l) => /^\| (simclr|moco) /.test(l)).length, 6);
    assert.match(
      md,
      /\| simclr \| baseline \| 70\.00 ± 0\.00 \(n=1\) \| 68\.00 ± 0\.00 \(n=1\) \| 70\.00 \| 90\.14 \|/,
    );
    assert.equal((await Deno.readTextFile(`${dir}/table3.csv`)).trim().split("\n").length, 1 + 12);
    assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/table3.json`)).rows.length, 12);
    assert.match(await Deno.readTextFile(`${dir}/table3.svg`), /^<svg/);
    const png = await Deno.readFile(`${dir}/table3.png`);
    assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]);
  });
});
