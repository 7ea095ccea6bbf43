// train-flow end to end on embedded MNIST: a resumed run ends with the same bytes as an
// uninterrupted one, a stop keeps the checkpoint and exports nothing, and bad options are one
// line with no files.

import assert from "node:assert/strict";
import { resolveFlowConfig, trainFlow } from "../../pipeline/train_flow.ts";
import { listNames, withTempDir } from "../_shared.ts";
import { runCli } from "../_cli.ts";

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
