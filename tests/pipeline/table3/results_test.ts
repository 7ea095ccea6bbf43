// Cells save and load for resumption; the aggregate is the mean and sample sd; the tables and the
// chart are written with every row.

import assert from "node:assert/strict";
import {
  aggregate,
  loadCell,
  saveCell,
  writeChart,
  writeTables,
} from "../../../pipeline/table3/results.ts";
import type { Cell } from "../../../pipeline/table3/results.ts";

function cell(learner: string, arm: string, seed: number, linear: number): Cell {
  return {
    learner,
    arm,
    seed,
    linear,
    knn: linear - 0.02,
    testImages: 100,
    steps: 10,
    finalLoss: 1,
    seconds: 1,
  };
}

Deno.test("cells round-trip; a missing cell is null (what resumption checks)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const c = cell("simclr", "generated:closed-form", 1, 0.8);
    await saveCell(dir, c);
    assert.deepEqual(await loadCell(dir, "simclr", "generated:closed-form", 1), c);
    assert.equal(await loadCell(dir, "simclr", "noised", 1), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("aggregate: mean and sample standard deviation in percent, per learner and arm", () => {
  const rows = aggregate([
    cell("simclr", "baseline", 0, 0.8),
    cell("simclr", "baseline", 1, 0.82),
    cell("simclr", "noised", 0, 0.9),
  ], [
    "simclr",
  ], ["baseline", "noised"]);
  const base = rows.find((r) => r.metric === "linear" && r.arm === "baseline")!;
  assert.ok(Math.abs(base.mean - 81) < 1e-9);
  assert.ok(Math.abs(base.std - Math.SQRT2) < 1e-9);
  assert.equal(rows.find((r) => r.metric === "linear" && r.arm === "noised")!.std, 0);
});

Deno.test("tables (md, csv, json) and chart (svg, png) are written with every row", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cells = ["simclr", "moco"].flatMap((l) =>
      ["baseline", "generated:noise", "noised"].map((a, i) => cell(l, a, 0, 0.7 + 0.01 * i))
    );
    const rows = aggregate(cells, ["simclr", "moco"], ["baseline", "generated:noise", "noised"]);
    await writeTables(dir, rows, "test run");
    await writeChart(dir, rows);
    const md = await Deno.readTextFile(`${dir}/table3.md`);
    assert.equal(
      md.split("\n").filter((l) => l.startsWith("| simclr") || l.startsWith("| moco")).length,
      6,
    );
    assert.match(
      md,
      /\| simclr \| baseline \| 70\.00 ± 0\.00 \(n=1\) \| 68\.00 ± 0\.00 \(n=1\) \| 70\.00 \| 90\.14 \|/,
    );
    assert.equal((await Deno.readTextFile(`${dir}/table3.csv`)).trim().split("\n").length, 1 + 12);
    assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/table3.json`)).rows.length, 12);
    assert.match(await Deno.readTextFile(`${dir}/table3.svg`), /^<svg/);
    const png = await Deno.readFile(`${dir}/table3.png`);
    assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]);
    await Deno.copyFile(`${dir}/table3.png`, "/tmp/table3_test.png");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
