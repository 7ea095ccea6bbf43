// train-flow end to end on embedded MNIST: a resumed run ends with the same bytes as an
// uninterrupted one, a stop keeps the checkpoint and exports nothing, and bad options are one
// line with no files.

import assert from "node:assert/strict";
import { resolveFlowConfig, trainFlow } from "../../pipeline/train_flow.ts";
import { listNames, withTempDir } from "../_shared.ts";
import { exists, runCli, spawnCli } from "../_cli.ts";

const SETS = [
  "data.size=32",
  "batch=8",
  "steps=6",
  "warmup=2",
  "evalEvery=3",
  "every=3",
  "evalPairs=2",
  "bins=2",
];
const quiet = { log: () => {}, progress: { write: () => {} } };

Deno.test("train-flow: 3 steps, then --resume to 6, gives the bytes of 6 steps in one go", async () => {
  await withTempDir(async (dir) => {
    await trainFlow(resolveFlowConfig("mnist", `${dir}/once`, SETS), { resume: false, ...quiet });
    const half = SETS.map((s) => (s === "steps=6" ? "steps=3" : s));
    await trainFlow(resolveFlowConfig("mnist", `${dir}/twice`, half), { resume: false, ...quiet });
    await trainFlow(resolveFlowConfig("mnist", `${dir}/twice`, SETS), { resume: true, ...quiet });
    for (const file of ["flow.ckpt", "flow.onnx", "flow.json", "log.csv"]) {
      assert.deepEqual(
        await Deno.readFile(`${dir}/twice/${file}`),
        await Deno.readFile(`${dir}/once/${file}`),
        file,
      );
    }
    const log = (await Deno.readTextFile(`${dir}/once/log.csv`)).trim().split("\n");
    assert.equal(log.length, 3, "a header and two evaluations");
    assert.match(log[0], /^step,epoch,lr,train_loss,heldout_loss,delta_t0,delta_t1$/);
  });
});

Deno.test("train-flow: a stop keeps the checkpoint of the steps done and exports nothing", async () => {
  await withTempDir(async (dir) => {
    const config = resolveFlowConfig("mnist", dir, SETS);
    const result = await trainFlow(config, { resume: false, ...quiet, stop: Promise.resolve() });
    assert.equal(result.interrupted, true);
    assert.ok(result.steps < 6);
    assert.deepEqual(await listNames(dir), ["flow.ckpt"]);
    const resumed = await trainFlow(config, { resume: true, ...quiet });
    assert.equal(resumed.steps, 6);
    assert.ok((await listNames(dir)).includes("flow.onnx"));
  });
});

Deno.test("train-flow: unknown keys, bad values and a missing checkpoint are one line, no files", async () => {
  await withTempDir(async (dir) => {
    const out = `${dir}/run`;
    for (
      const [sets, code, pattern] of [
        [["presett=tiny"], 2, /presett: unknown key \(did you mean "preset"\?\)/],
        [["preset=huge"], 2, /preset/],
        [["steps=abc"], 2, /steps: expected a number/],
        [["data.sise=10"], 2, /data.sise: unknown key/],
      ] as const
    ) {
      const r = await runCli(["train-flow", "--out", out, ...sets.flatMap((s) => ["--set", s])]);
      assert.equal(r.code, code, r.stderr);
      assert.match(r.stderr, pattern);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    }
    const missing = await runCli(["train-flow", "--out", out, "--resume"]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /flow\.ckpt/);
    assert.deepEqual(await listNames(dir), []);
  });
});

Deno.test("train-flow CLI: Ctrl-C after the first checkpoint exits 130 and keeps it; --resume finishes", async () => {
  await withTempDir(async (dir) => {
    const sets = [...SETS.filter((s) => s !== "steps=6"), "steps=400", "every=1"];
    const args = ["train-flow", "--out", dir, ...sets.flatMap((s) => ["--set", s])];
    const child = spawnCli(args);
    const output = child.output();
    const deadline = Date.now() + 120_000;
    while (!(await exists(`${dir}/flow.ckpt`))) {
      assert.ok(Date.now() < deadline, "no checkpoint after 120 s");
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    // SIGTERM, as a scheduler stops a job: the same clean stop as Ctrl-C.
    child.kill("SIGTERM");
    const result = await output;
    const stderr = new TextDecoder().decode(result.stderr);
    assert.equal(result.code, 130, stderr);
    assert.match(stderr, /stopped at step \d+; checkpoint kept/);
    const names = await listNames(dir);
    assert.ok(!names.includes("flow.onnx") && names.every((n) => !n.endsWith(".tmp")), `${names}`);
    const resumed = await runCli([
      ...args.map((a) => (a === "steps=400" ? "steps=8" : a)),
      "--resume",
    ]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /resumed at step [1-7]\b/);
    assert.ok(await exists(`${dir}/flow.onnx`));
  });
});
