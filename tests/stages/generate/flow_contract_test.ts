// The flow contract's pure pieces: parsing with overrides (whole keys and object fields), the
// roles a conditional model needs, and the signature check's reading of batch and t dims, with
// initializers that older exporters also list as graph inputs left out.

import assert from "node:assert/strict";
import onnxProto from "onnx-proto";
import { SiaError } from "../../../core/errors.ts";
import {
  checkSignature,
  modelSignature,
  parseContract,
} from "../../../stages/generate/flow_contract.ts";
import type { ModelSignature } from "../../../stages/generate/flow_contract.ts";
import { SMALL_CONTRACT } from "./_flow_models.ts";

const signature = (
  t: (number | null)[] | null,
  batch: number | null = null,
  extra: ModelSignature["inputs"] = [],
): ModelSignature => ({
  inputs: [
    { name: "x", type: "float", dims: [batch, 1, 4, 4] },
    { name: "t", type: "float", dims: t },
    ...extra,
  ],
  outputs: [{ name: "out", type: "float", dims: [batch, 1, 4, 4] }],
});

Deno.test("parseContract: overrides replace keys, and object overrides only their fields", () => {
  const c = parseContract(SMALL_CONTRACT, "m/flow.json", {
    inputs: { x: "image" },
    time: { scale: 1000 },
    range: [-1, 1],
    layout: "nhwc",
  });
  assert.deepEqual(c.inputs, { x: "image", t: "t" });
  assert.deepEqual(c.time, { dataAt: 1, scale: 1000 });
  assert.deepEqual(c.range, [-1, 1]);
  assert.equal(c.layout, "nhwc");
  assert.equal(c.conditional, false);
  // Without a file every key comes from overrides.
  const all = parseContract(null, "m/model.onnx", SMALL_CONTRACT);
  assert.deepEqual(all, parseContract(SMALL_CONTRACT, "m/flow.json"));
});

Deno.test("parseContract: a bad value names the file, or the override's key", () => {
  const throwsLike = (f: () => unknown, message: RegExp, code: number) =>
    assert.throws(f, (e: unknown) => {
      assert.ok(e instanceof SiaError);
      assert.match(e.message, message);
      assert.equal(e.exitCode, code);
      return true;
    });
  throwsLike(
    () => parseContract({ ...SMALL_CONTRACT, shape: [1, 4] }, "m/flow.json"),
    /^m\/flow\.json: shape: expected \[C, H, W\]/,
    1,
  );
  throwsLike(
    () => parseContract(SMALL_CONTRACT, "m/flow.json", { schedule: "cosine" }),
    /^generate\.params\.schedule: expected one of linear, linear-smin, trig, vp, got "cosine"/,
    2,
  );
  throwsLike(
    () => parseContract({ ...SMALL_CONTRACT, conditional: true }, "m/flow.json"),
    /inputs: a conditional model needs inputs\.y/,
    1,
  );
  throwsLike(
    () => parseContract({ ...SMALL_CONTRACT, inputs: { x: "x", t: "t", y: "y" } }, "m/flow.json"),
    /inputs\.y is for conditional models/,
    1,
  );
  throwsLike(
    () => parseContract({ ...SMALL_CONTRACT, inputs: { x: "x", t: "" } }, "m/flow.json"),
    /inputs\.t must be a non-empty string/,
    1,
  );
});

Deno.test("checkSignature: t as [B], [1] or a scalar; a fixed batch; labels", () => {
  const c = parseContract(SMALL_CONTRACT, "m/flow.json");
  assert.deepEqual(checkSignature(c, signature([null]), "m.onnx"), {
    batch: null,
    tDims: "batch",
    labelType: null,
  });
  assert.equal(checkSignature(c, signature([1]), "m.onnx").tDims, "one");
  assert.equal(checkSignature(c, signature([]), "m.onnx").tDims, "scalar");
  assert.deepEqual(checkSignature(c, signature([8], 8), "m.onnx"), {
    batch: 8,
    tDims: "batch",
    labelType: null,
  });
  // A t of [8] only fits a batch fixed at 8.
  assert.throws(() => checkSignature(c, signature([8]), "m.onnx"), /t must be \[B\], \[1\]/);
  const conditional = parseContract(
    { ...SMALL_CONTRACT, conditional: true, inputs: { x: "x", t: "t", y: "label" } },
    "m/flow.json",
  );
  const label = { name: "label", type: "int64", dims: [null] };
  assert.equal(
    checkSignature(conditional, signature([null], null, [label]), "m.onnx").labelType,
    "int64",
  );
  assert.throws(
    () => checkSignature(c, signature([null], null, [label]), "m.onnx"),
    /m\.onnx: input "label" is not in the contract/,
  );
});

Deno.test("modelSignature: initializers listed as graph inputs are not inputs to feed", () => {
  const { onnx } = onnxProto;
  const tensor = (name: string, dims: (number | string)[]) => ({
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: {
          dim: dims.map((d) => typeof d === "number" ? { dimValue: d } : { dimParam: d }),
        },
      },
    },
  });
  const bytes = onnx.ModelProto.encode(onnx.ModelProto.create({
    irVersion: 3,
    graph: {
      name: "old exporter",
      input: [tensor("x", ["B", 1, 4, 4]), tensor("t", []), tensor("weight", [1])],
      output: [tensor("out", ["B", 1, 4, 4])],
      initializer: [{ name: "weight", dataType: 1, dims: [1], floatData: [2] }],
      node: [{ opType: "Mul", input: ["x", "weight"], output: ["out"] }],
    },
  })).finish();
  const s = modelSignature(bytes);
  assert.deepEqual(s.inputs.map((v) => v.name), ["x", "t"]);
  assert.deepEqual(s.inputs[0].dims, [null, 1, 4, 4]);
  assert.deepEqual(s.inputs[1].dims, []);
  assert.equal(
    checkSignature(parseContract(SMALL_CONTRACT, "f.json"), s, "m.onnx").tDims,
    "scalar",
  );
});
