// Table 3 on the experiment layer, on a tiny config: every file with the right cells, a resumed
// run (some cells deleted, as after an interruption) writes byte-identical tables, a trained-flow
// arm runs end to end (its flow trained once, stored by content, reused by every seed, hashes
// recorded), the paired statistics equal a hand computation, and Ctrl-C keeps finished cells.

import assert from "node:assert/strict";
import { resolveTable3Config, table3 } from "../../../pipeline/experiments/table3.ts";
import type { Table3Cell } from "../../../pipeline/experiments/table3.ts";
import { runExperiment } from "../../../pipeline/experiments/run.ts";
import type { RunOptions, StoredCell } from "../../../pipeline/experiments/experiment.ts";
import { SiaError } from "../../../core/errors.ts";
import { sha256Hex } from "../../../core/files.ts";
import { decodeNpy } from "../../../core/npy.ts";
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
        for (const v of [cell.logistic, cell.ridge, cell.knn]) assert.ok(v >= 0 && v <= 1);
        assert.equal(cell.pool === undefined, arm === "baseline");
      }
    }
    // The four learners of a seed share one pool per arm: one hash each.
    for (const arm of ["generated:closed-form", "noised"]) {
      const hashes = new Set(
        cells.filter((c) => c.key.arm === arm).map((c) => c.result.pool!.sha256),
      );
      assert.equal(hashes.size, 1, arm);
    }
    const files = [
      "table3.md",
      "table3.csv",
      "table3.json",
      "table3.svg",
      "table3.png",
      "table3-differences.svg",
      "table3-differences.png",
    ];
    for (const file of files) assert.ok((await Deno.stat(`${dir}/${file}`)).size > 0, file);
    const read = () => Promise.all(files.map((f) => Deno.readFile(`${dir}/${f}`)));
    const first = await read();
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
    // Byte-identical tables and charts.
    assert.deepEqual(await read(), first);
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

Deno.test("table3 report: paired differences equal a hand computation; tables, reading, charts", async () => {
  await withTempDir(async (dir) => {
    const config = resolveTable3Config({
      experiment: "table3",
      data: { source: "mnist", size: 300 },
      table3: { learners: "simclr", seeds: "0,1,2", pool: 600, dup: 2, nnSample: 0 },
      generators: { "closed-form": {} },
      out: { dir },
    });
    // logistic accuracy of each arm at seeds 0, 1, 2
    const logistic: Record<string, number[]> = {
      floor: [0.75, 0.76, 0.74],
      baseline: [0.8, 0.81, 0.79],
      "generated:closed-form": [0.82, 0.815, 0.8],
      noised: [0.81, 0.8, 0.805],
    };
    const pool = { sha256: "ab".repeat(32), images: 600, model: "", memorized: NaN, nearest: NaN };
    const cells = Object.entries(logistic).flatMap(([arm, values]) =>
      values.map((v, seed) => ({
        experiment: "table3",
        key: { learner: arm === "floor" ? "random-init" : "simclr", arm, seed },
        config: "",
        result: {
          logistic: v,
          ridge: v - 0.01,
          knn: v - 0.1,
          testImages: 100,
          steps: 3,
          finalLoss: 1,
          ...(arm === "floor" || arm === "baseline" ? {} : { pool }),
        },
        seconds: 1,
      }))
    );
    const data = {
      source: "mnist",
      shape: [300, 28, 28, 1],
    } as unknown as import("../../../core/batch.ts").Dataset;
    const shared = { train: data, test: data, probes: {} };
    const md = await table3.report(config, cells, shared as never, dir);
    const json = JSON.parse(await Deno.readTextFile(`${dir}/table3.json`));
    // 2 x 300 real beside 600 pool images: half the draws come from the pool.
    assert.equal(json.poolShare, 0.5);
    assert.match(md, /\| simclr \| noised \| 50\.0 \|/);
    assert.match(md, /\| simclr \| baseline \| 0\.0 \|/);
    const t975 = 4.302652729911275; // Student t, 2 degrees of freedom, 97.5 %
    const byHand = (d: number[]) => {
      const mean = (d[0] + d[1] + d[2]) / 3;
      const sd = Math.sqrt(d.reduce((s, v) => s + (v - mean) ** 2, 0) / 2);
      const half = (t975 * sd) / Math.sqrt(3);
      return { mean, lo: mean - half, hi: mean + half };
    };
    const expect = [
      ["baseline - floor", [5, 5, 5], 3, 0, "baseline above floor (interval excludes 0)"],
      [
        "generated:closed-form - noised",
        [1, 1.5, -0.5],
        2,
        1,
        "generated:closed-form vs noised: not resolved (interval includes 0)",
      ],
      ["generated:closed-form - baseline", [2, 0.5, 1], 3, 0, null],
      ["noised - baseline", [1, -1, 1.5], 2, 1, null],
    ] as const;
    assert.deepEqual(json.differences.map((d: { comparison: string }) => d.comparison), [
      "baseline - floor",
      "generated:closed-form - noised",
      "generated:closed-form - baseline",
      "noised - baseline",
    ]);
    for (const [comparison, d, above, below, reading] of expect) {
      const got = json.differences.find((x: { comparison: string }) => x.comparison === comparison);
      const want = byHand([...d]);
      got.logistic.differences.forEach((v: number, i: number) =>
        assert.ok(Math.abs(v - d[i]) < 1e-9)
      );
      for (const k of ["mean", "lo", "hi"] as const) {
        assert.ok(Math.abs(got.logistic[k] - want[k]) < 1e-9, `${comparison} ${k}`);
      }
      assert.equal(got.logistic.above, above);
      assert.equal(got.logistic.below, below);
      if (reading) assert.equal(got.reading, reading);
    }
    // ridge and kNN are the logistic values shifted by a constant: the same differences.
    const gn = json.differences[1];
    assert.ok(Math.abs(gn.ridge.mean - gn.logistic.mean) < 1e-9);
    const csv = (await Deno.readTextFile(`${dir}/table3.csv`)).trim().split("\n");
    // 4 arm rows and 4 differences, 3 metrics each.
    assert.equal(csv.length, 1 + 3 * 4 + 3 * 4);
    assert.match(await Deno.readTextFile(`${dir}/table3.svg`), /^<svg/);
    assert.match(await Deno.readTextFile(`${dir}/table3-differences.svg`), /^<svg/);
    const png = await Deno.readFile(`${dir}/table3-differences.png`);
    assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]);
  });
});

Deno.test("table3 with a trained-flow arm: the flow trains once, by content, reused across seeds and reruns", async () => {
  await withTempDir(async (dir) => {
    const config = () =>
      resolveTable3Config({
        experiment: "table3",
        data: { source: "mnist", size: 200 },
        table3: {
          learners: "simclr",
          seeds: "0,1",
          steps: 2,
          batch: 8,
          dim: 16,
          pool: 16,
          probeTrain: 150,
          probeTest: 60,
          nnSample: 16,
          shards: true,
        },
        generators: {},
        flow: {
          train: { steps: 3, batch: 8, warmup: 0, evalEvery: 3, every: 3 },
          sample: { steps: 2 },
        },
        out: { dir },
      });
    const lines: string[] = [];
    const cells = await runTable3(config(), { log: (l) => lines.push(l), print: () => {} });
    assert.equal(cells.length, 2 * 4); // floor, baseline, trained flow, noised
    assert.equal(lines.filter((l) => /training the table's flow/.test(l)).length, 1);
    const flows = await listNames(`${dir}/flows`);
    assert.equal(flows.length, 1);
    const hash = await sha256Hex(await Deno.readFile(`${dir}/flows/${flows[0]}/flow.onnx`));
    const flowCells = cells.filter((c) => c.key.arm === "generated:trained-flow");
    assert.equal(flowCells.length, 2);
    // One model for both seeds, a fresh pool for each.
    assert.deepEqual(flowCells.map((c) => c.result.pool!.model), [hash, hash]);
    assert.notEqual(flowCells[0].result.pool!.sha256, flowCells[1].result.pool!.sha256);
    // The pool written as shards has the recorded hash.
    const shard = await Deno.readFile(
      `${dir}/pools/generated_trained-flow__seed0/images-00000.npy`,
    );
    // Little-endian float32 pixels: the shard's data bytes are the pool's bytes.
    assert.equal(await sha256Hex(decodeNpy(shard).data), flowCells[0].result.pool!.sha256);
    assert.match(await Deno.readTextFile(`${dir}/table3.md`), new RegExp(hash.slice(0, 16)));
    // A rerun after losing a trained-flow cell reuses the stored flow: no training line.
    await Deno.remove(`${dir}/cells/simclr__generated_trained-flow__seed1.json`);
    lines.length = 0;
    const again = await runTable3(config(), { log: (l) => lines.push(l), print: () => {} });
    assert.equal(lines.filter((l) => /training the table's flow/.test(l)).length, 0);
    // As stored (JSON: the floor's NaN loss reads back as null).
    const stored = (c: StoredCell<Table3Cell>[]) => JSON.stringify(c.map((c) => c.result));
    assert.equal(stored(again), stored(cells));
  });
});
