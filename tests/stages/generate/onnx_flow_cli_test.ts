// onnx-flow through the command line: every way a model can miss its contract is one line on
// stderr naming the file and the mismatch, exit 1 (2 for a bad --set value), and no output
// written; a model that fits runs, and the README's worked example (the committed PyTorch
// fixture on the embedded MNIST digits) writes unlabeled samples.

import assert from "node:assert/strict";
import { GraphBuilder } from "../../../core/onnx.ts";
import { decodeNpy, npyValues } from "../../../core/npy.ts";
import {
  assertOneLineError,
  bytesOf,
  exists,
  npyBytes,
  runCli,
  snapshot,
  unitPixels,
  withTempDir,
} from "../../_cli.ts";
import { SMALL_CONTRACT } from "./_flow_models.ts";

type Dims = readonly (number | string)[];

interface ModelSpec {
  readonly x?: { readonly name?: string; readonly type?: "float" | "double"; readonly dims?: Dims };
  readonly t?: { readonly name?: string; readonly dims?: Dims };
  readonly out?: { readonly name?: string; readonly dims?: Dims };
  readonly extraInput?: string;
}

/** A velocity model out = -x / 2 with the declared signature the spec asks for ([B, 1, 4, 4]). */
function model(spec: ModelSpec = {}): Uint8Array {
  const g = new GraphBuilder("cli_flow");
  const x = spec.x?.name ?? "x";
  const out = spec.out?.name ?? "out";
  g.input(x, spec.x?.type ?? "float", spec.x?.dims ?? ["B", 1, 4, 4]);
  g.input(spec.t?.name ?? "t", "float", spec.t?.dims ?? ["B"]);
  if (spec.extraInput) g.input(spec.extraInput, "float", [1]);
  const half = g.constant("half", Float32Array.of(-0.5), [1]);
  g.node("Mul", [x, half], { outputs: [out] });
  g.output(out, "float", spec.out?.dims ?? ["B", 1, 4, 4]);
  return g.build();
}

interface Case {
  readonly model?: Uint8Array | null;
  /** flow.json's text (null: none). */
  readonly contract?: string | null;
  readonly set?: readonly string[];
  readonly code?: number;
  readonly expect: (tmp: string) => (string | RegExp)[];
}

const json = (patch: Record<string, unknown>, drop: string[] = []) =>
  JSON.stringify(
    Object.fromEntries(
      Object.entries({ ...SMALL_CONTRACT, ...patch }).filter(([k]) => !drop.includes(k)),
    ),
  );

async function setup(tmp: string, c: Case) {
  await Deno.writeFile(`${tmp}/data.npy`, npyBytes("<f4", [5, 4, 4], bytesOf(unitPixels(80))));
  if (c.model !== null) await Deno.writeFile(`${tmp}/flow.onnx`, c.model ?? model());
  const text = c.contract === undefined ? JSON.stringify(SMALL_CONTRACT) : c.contract;
  if (text !== null) await Deno.writeTextFile(`${tmp}/flow.json`, text);
}

const args = (tmp: string, out: string, set: readonly string[] = []) => [
  "generate",
  "--data",
  `${tmp}/data.npy`,
  "--generator",
  "onnx-flow",
  "--set",
  `model=${tmp}/flow.onnx`,
  "--set",
  "steps=4",
  ...set.flatMap((s) => ["--set", s]),
  "--count",
  "6",
  "--out",
  out,
];

function bad(name: string, c: Case) {
  Deno.test(`onnx-flow contract error: ${name}`, async () => {
    await withTempDir(async (tmp) => {
      await setup(tmp, c);
      const before = await snapshot(tmp);
      const result = await runCli(args(tmp, `${tmp}/out`, c.set));
      assertOneLineError(result, c.code ?? 1, ...c.expect(tmp));
      assert.equal(await exists(`${tmp}/out`), false, "the output directory was not created");
      assert.deepEqual(await snapshot(tmp), before, "no file under the temp dir changed");
    });
  });
}

const onnxFile = (tmp: string) => `sia: ${tmp}/flow.onnx: `;
const jsonFile = (tmp: string) => `sia: ${tmp}/flow.json: `;

bad("the x input's name is not in the graph", {
  contract: json({ inputs: { x: "image", t: "t" } }),
  expect: (tmp) => [onnxFile(tmp), `no input "image"`, "inputs.x", "x, t"],
});
bad("the output's name is not in the graph", {
  contract: json({ output: "velocity" }),
  expect: (tmp) => [onnxFile(tmp), `no output "velocity"`, "out"],
});
bad("an input the contract does not name", {
  model: model({ extraInput: "class_labels" }),
  expect: (tmp) => [onnxFile(tmp), `input "class_labels" is not in the contract`],
});
bad("x of the wrong rank", {
  model: model({ x: { dims: ["B", 16] }, out: { dims: ["B", 16] } }),
  expect: (tmp) => [onnxFile(tmp), `input "x" has rank 2`, "[B, 1, 4, 4]"],
});
bad("x of the wrong dtype", {
  model: model({ x: { type: "double" } }),
  expect: (tmp) => [onnxFile(tmp), `input "x" is double, not float`],
});
bad("a fixed dimension that does not fit the data", {
  model: model({ x: { dims: ["B", 1, 8, 8] }, out: { dims: ["B", 1, 8, 8] } }),
  expect: (tmp) => [onnxFile(tmp), `input "x" is [?, 1, 8, 8]`, "[B, 1, 4, 4]"],
});
bad("the layout the contract names does not fit the graph", {
  contract: json({ layout: "nhwc" }),
  model: model({ x: { dims: ["B", 1, 4, 3] }, out: { dims: ["B", 1, 4, 3] } }),
  expect: (tmp) => [onnxFile(tmp), `input "x" is [?, 1, 4, 3]`, "[B, 4, 4, 1]", "nhwc"],
});
bad("a t input that is neither [B], [1] nor a scalar", {
  model: model({ t: { dims: ["B", 1] } }),
  expect: (tmp) => [onnxFile(tmp), `input "t" (t) is [?, 1]`, "[B], [1] or a scalar"],
});
bad("the contract's shape does not fit the data", {
  contract: json({ shape: [3, 4, 4] }),
  expect: (tmp) => [onnxFile(tmp), "shape [3, 4, 4]", "[1, 4, 4]"],
});
bad("a key missing from flow.json", {
  contract: json({}, ["prediction"]),
  expect: (tmp) => [jsonFile(tmp), `missing "prediction"`],
});
bad("an unknown prediction", {
  contract: json({ prediction: "eps" }),
  expect: (tmp) => [jsonFile(tmp), "prediction", "velocity, denoiser, noise, score", `"eps"`],
});
bad("a time convention that is not 1 or 0", {
  contract: json({ time: { dataAt: 2, scale: 1 } }),
  expect: (tmp) => [jsonFile(tmp), "time", `"dataAt": 1 or 0`],
});
bad("an unknown key in flow.json", {
  contract: json({ predicton: "velocity" }),
  expect: (tmp) => [jsonFile(tmp), `unknown key "predicton"`, `did you mean "prediction"`],
});
bad("flow.json that is not JSON", {
  contract: "{ inputs: x }",
  expect: (tmp) => [jsonFile(tmp), "not valid JSON"],
});
bad("no flow.json and no overrides", {
  contract: null,
  expect: (tmp) => [onnxFile(tmp), "no flow.json beside it", "--set inputs="],
});
bad("no model file", {
  model: null,
  expect: (tmp) => [onnxFile(tmp), "cannot read the model (no such file)"],
});
bad("a model file that is not ONNX", {
  model: new TextEncoder().encode("this is not a protobuf, just some text\n"),
  expect: (tmp) => [onnxFile(tmp), "not an ONNX model"],
});
bad("a bad override value", {
  set: ["range=[1,0]"],
  code: 2,
  expect: () => ["sia: generate.params.range: ", "lo < hi", "[1,0]"],
});

Deno.test("onnx-flow: overrides mend a contract, and a model that fits runs", async () => {
  await withTempDir(async (tmp) => {
    // flow.json names the output wrongly and claims nhwc; --set fixes both.
    const c = { contract: json({ output: "velocity", layout: "nhwc" }), expect: () => [] };
    await setup(tmp, c);
    const result = await runCli(
      args(tmp, `${tmp}/out`, ["output=out", "layout=nchw", 'time={"scale":1}', "sampler=sde"]),
    );
    assert.equal(result.code, 0, result.stderr);
    const manifest = JSON.parse(await Deno.readTextFile(`${tmp}/out/manifest.json`));
    assert.equal(manifest.generator.name, "onnx-flow");
    assert.equal(manifest.generator.nfePerSample, 4);
    assert.equal(manifest.counts.total, 6);
    assert.deepEqual(manifest.counts.perClass, { "-1": 6 });
  });
});

Deno.test("onnx-flow: the README's worked example (PyTorch fixture on MNIST)", async () => {
  await withTempDir(async (tmp) => {
    const result = await runCli([
      "generate",
      "--data",
      "mnist",
      "--generator",
      "onnx-flow",
      "--set",
      "model=tests/fixtures/flow/velocity.onnx",
      "--set",
      "steps=10",
      "--count",
      "8",
      "--out",
      `${tmp}/run`,
    ]);
    assert.equal(result.code, 0, result.stderr);
    const images = npyValues(decodeNpy(await Deno.readFile(`${tmp}/run/images-00000.npy`)));
    const labels = npyValues(decodeNpy(await Deno.readFile(`${tmp}/run/labels-00000.npy`)));
    assert.equal(images.length, 8 * 28 * 28);
    assert.ok(images.every(Number.isFinite));
    assert.deepEqual([...labels], new Array(8).fill(-1));
    const manifest = JSON.parse(await Deno.readTextFile(`${tmp}/run/manifest.json`));
    assert.equal(manifest.generator.prediction, "velocity");
    assert.equal(manifest.generator.nfePerSample, 10);
  });
});
