// The model contract of a flow network, trained by sia or anywhere else: flow.json beside the
// .onnx says which inputs take x and t, which output is the prediction and what it predicts, the
// schedule it was trained on, its data range, its time convention and its image shape. Pure
// pieces: parsing (with --set overrides merged in), and the check of a contract against the
// inputs and outputs the ONNX graph declares, so a model that does not fit is a one-line error
// before anything is written.

import onnxProto from "onnx-proto";
import { fileError, keyError } from "../../core/errors.ts";
import { suggestion } from "../../core/schema.ts";
import { PREDICTIONS } from "./interpolant/prediction.ts";
import type { Prediction } from "./interpolant/prediction.ts";
import { SCHEDULES } from "./interpolant/schedule.ts";
import type { ScheduleName } from "./interpolant/schedule.ts";

export const LAYOUTS = ["nchw", "nhwc"] as const;
export type Layout = (typeof LAYOUTS)[number];
export const CONTRACT_KEYS = [
  "inputs",
  "output",
  "layout",
  "prediction",
  "schedule",
  "range",
  "time",
  "shape",
  "conditional",
] as const;
export type ContractKey = (typeof CONTRACT_KEYS)[number];

export interface FlowContract {
  /** Graph input names: the state x, the time t, and the class label y of a conditional model. */
  readonly inputs: { readonly x: string; readonly t: string; readonly y?: string };
  readonly output: string;
  readonly layout: Layout;
  readonly prediction: Prediction;
  /** alpha, beta as functions of sia's t (t = 0 noise, t = 1 data); gamma = 0. */
  readonly schedule: ScheduleName;
  /** The data scale the model works in: sia's [0, 1] maps linearly onto [lo, hi]. */
  readonly range: readonly [number, number];
  /** The model is fed scale * t (dataAt 1) or scale * (1 - t) (dataAt 0). */
  readonly time: { readonly dataAt: 0 | 1; readonly scale: number };
  /** [C, H, W] of one image. */
  readonly shape: readonly [number, number, number];
  /** The model takes the class label as inputs.y; samples keep their anchor's label. */
  readonly conditional: boolean;
}

type Raw = Record<string, unknown>;

function isRecord(value: unknown): value is Raw {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * The value of an override given as text (--set generate.params.range=[-1,1]): JSON when it
 * parses, else the bare string (layout=nhwc).
 */
export function overrideValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * The contract from flow.json's object with overrides on top: an override replaces a key, and an
 * object override (inputs, time) replaces only the fields it gives. `where` is flow.json's path,
 * or, with `file` null (no flow.json), the model's: every key then comes from overrides. A
 * problem in the file names the file; one in an override names its key, generate.params.KEY.
 */
export function parseContract(
  file: unknown | null,
  where: string,
  overrides: Partial<Record<ContractKey, unknown>> = {},
): FlowContract {
  const fail = (key: string, problem: string) =>
    key in overrides
      ? keyError(`generate.params.${key}`, problem)
      : fileError(where, `${key}: ${problem}`);
  const absent = file === null;
  file ??= {};
  if (!isRecord(file)) throw fileError(where, "a flow contract must be a JSON object");
  for (const key of Object.keys(file)) {
    if (!(CONTRACT_KEYS as readonly string[]).includes(key)) {
      throw fileError(where, `unknown key "${key}"${suggestion(key, CONTRACT_KEYS)}`);
    }
  }
  const raw: Raw = { ...file };
  for (const [key, value] of Object.entries(overrides)) {
    raw[key] = isRecord(value) && isRecord(raw[key]) ? { ...raw[key] as Raw, ...value } : value;
  }
  const need = (key: ContractKey): unknown => {
    if (raw[key] === undefined) {
      throw fileError(
        where,
        absent
          ? `no flow.json beside it, and no --set ${key}=... (the contract's "${key}")`
          : `missing "${key}"`,
      );
    }
    return raw[key];
  };
  const name = (key: string, value: unknown): string => {
    if (typeof value !== "string" || value === "") {
      throw fail(
        key.split(".")[0],
        `${key} must be a non-empty string, got ${JSON.stringify(value)}`,
      );
    }
    return value;
  };
  const oneOf = <V extends string>(key: ContractKey, values: readonly V[]): V => {
    const value = need(key);
    if (typeof value !== "string" || !(values as readonly string[]).includes(value)) {
      throw fail(key, `expected one of ${values.join(", ")}, got ${JSON.stringify(value)}`);
    }
    return value as V;
  };

  const inputs = need("inputs");
  if (!isRecord(inputs)) throw fail("inputs", `expected {"x": NAME, "t": NAME}`);
  for (const key of Object.keys(inputs)) {
    if (!["x", "t", "y"].includes(key)) throw fail("inputs", `unknown input role "${key}"`);
  }
  const conditional = raw.conditional ?? false;
  if (typeof conditional !== "boolean") {
    throw fail("conditional", `expected true or false, got ${JSON.stringify(conditional)}`);
  }
  if (conditional && inputs.y === undefined) {
    throw fail("inputs", `a conditional model needs inputs.y, the label input`);
  }
  if (!conditional && inputs.y !== undefined) {
    throw fail("inputs", `inputs.y is for conditional models (set "conditional": true)`);
  }

  const range = need("range");
  if (
    !Array.isArray(range) || range.length !== 2 ||
    !range.every((v) => typeof v === "number" && Number.isFinite(v)) || range[0] >= range[1]
  ) {
    throw fail("range", `expected [lo, hi] with lo < hi, got ${JSON.stringify(range)}`);
  }
  const time = need("time");
  if (
    !isRecord(time) || (time.dataAt !== 0 && time.dataAt !== 1) ||
    typeof time.scale !== "number" || !(time.scale > 0) || !Number.isFinite(time.scale) ||
    Object.keys(time).some((k) => k !== "dataAt" && k !== "scale")
  ) {
    throw fail(
      "time",
      `expected {"dataAt": 1 or 0, "scale": S > 0}, got ${JSON.stringify(time)}`,
    );
  }
  const shape = need("shape");
  if (
    !Array.isArray(shape) || shape.length !== 3 ||
    !shape.every((v) => Number.isInteger(v) && v > 0)
  ) {
    throw fail("shape", `expected [C, H, W] of positive integers, got ${JSON.stringify(shape)}`);
  }
  return {
    inputs: {
      x: name("inputs.x", inputs.x),
      t: name("inputs.t", inputs.t),
      ...(conditional ? { y: name("inputs.y", inputs.y) } : {}),
    },
    output: name("output", need("output")),
    layout: oneOf("layout", LAYOUTS),
    prediction: oneOf("prediction", PREDICTIONS),
    schedule: oneOf("schedule", SCHEDULES),
    range: [range[0], range[1]],
    time: { dataAt: time.dataAt, scale: time.scale },
    shape: [shape[0], shape[1], shape[2]],
    conditional,
  };
}

/** What the graph declares for one input or output: element type and dims (null: symbolic). */
export interface TensorSignature {
  readonly name: string;
  /** ONNX element type name: "float", "double", "int64", ... */
  readonly type: string;
  /** null when the graph does not declare a shape. */
  readonly dims: readonly (number | null)[] | null;
}

export interface ModelSignature {
  readonly inputs: readonly TensorSignature[];
  readonly outputs: readonly TensorSignature[];
}

const { onnx } = onnxProto;
const TYPE_NAMES = Object.fromEntries(
  Object.entries(onnx.TensorProto.DataType).map(([name, code]) => [code, name.toLowerCase()]),
);

/** The declared graph inputs (initializers excluded: they have values) and outputs of a model. */
export function modelSignature(bytes: Uint8Array): ModelSignature {
  const graph = onnx.ModelProto.decode(bytes).graph;
  if (!graph) throw new Error("no graph in the model");
  const constants = new Set((graph.initializer ?? []).map((i) => i.name));
  const describe = (v: onnxProto.onnx.IValueInfoProto): TensorSignature => {
    const tensor = v.type?.tensorType;
    const dims = tensor?.shape?.dim?.map((d) => {
      // int64 fields decode as Long objects.
      const value = d.dimValue === null || d.dimValue === undefined
        ? NaN
        : Number(String(d.dimValue));
      return d.dimParam || !(value > 0) ? null : value;
    }) ?? null;
    return {
      name: v.name ?? "",
      type: tensor ? TYPE_NAMES[tensor.elemType ?? 0] ?? "undefined" : "not a tensor",
      dims,
    };
  };
  return {
    inputs: (graph.input ?? []).filter((v) => !constants.has(v.name ?? "")).map(describe),
    outputs: (graph.output ?? []).map(describe),
  };
}

/** How the model is to be called, once its signature fits the contract. */
export interface ModelCall {
  /** Rows per call when the graph fixes the batch dimension (the stage pads to it); else null. */
  readonly batch: number | null;
  /** Dims of the t input: [B], [1] or [] (a scalar). */
  readonly tDims: "batch" | "one" | "scalar";
  /** Element type of the label input of a conditional model. */
  readonly labelType: "int64" | "int32" | "float" | null;
}

const showDims = (dims: readonly (number | null)[]) => `[${dims.map((d) => d ?? "?").join(", ")}]`;

/**
 * Checks a signature against a contract and the data's [C, H, W]; throws a one-line error naming
 * `model` (the .onnx path) and the mismatch.
 */
export function checkSignature(
  contract: FlowContract,
  signature: ModelSignature,
  model: string,
): ModelCall {
  const fail = (problem: string) => fileError(model, problem);
  const find = (list: readonly TensorSignature[], name: string, kind: string, role: string) => {
    const found = list.find((v) => v.name === name);
    if (!found) {
      throw fail(
        `no ${kind} "${name}" (the contract's ${role}); the graph's ${kind}s: ${
          list.map((v) => v.name).join(", ") || "none"
        }`,
      );
    }
    return found;
  };
  const [c, h, w] = contract.shape;
  const image = contract.layout === "nchw" ? [c, h, w] : [h, w, c];
  const imageDims = (v: TensorSignature, role: string): number | null => {
    if (v.type !== "float") throw fail(`${role} "${v.name}" is ${v.type}, not float (float32)`);
    if (!v.dims) return null;
    if (v.dims.length !== 4) {
      throw fail(
        `${role} "${v.name}" has rank ${v.dims.length} ${showDims(v.dims)}; a ${contract.layout} ` +
          `image batch has rank 4 [B, ${image.join(", ")}]`,
      );
    }
    v.dims.slice(1).forEach((d, k) => {
      if (d !== null && d !== image[k]) {
        throw fail(
          `${role} "${v.name}" is ${showDims(v.dims!)}; the data needs [B, ${image.join(", ")}] ` +
            `(${contract.layout}, shape [${contract.shape.join(", ")}])`,
        );
      }
    });
    return v.dims[0];
  };
  const x = find(signature.inputs, contract.inputs.x, "input", "inputs.x");
  const t = find(signature.inputs, contract.inputs.t, "input", "inputs.t");
  const out = find(signature.outputs, contract.output, "output", "output");
  const named = new Set(Object.values(contract.inputs));
  const extra = signature.inputs.filter((v) => !named.has(v.name));
  if (extra.length) {
    throw fail(
      `input "${extra[0].name}" is not in the contract (which names ${
        [...named].map((n) => `"${n}"`).join(", ")
      })`,
    );
  }
  const xBatch = imageDims(x, "input");
  const outBatch = imageDims(out, "output");
  if (xBatch !== null && outBatch !== null && xBatch !== outBatch) {
    throw fail(`input "${x.name}" has batch ${xBatch} but output "${out.name}" has ${outBatch}`);
  }
  const batch = xBatch ?? outBatch;
  if (t.type !== "float") throw fail(`input "${t.name}" (t) is ${t.type}, not float (float32)`);
  let tDims: ModelCall["tDims"] = "batch";
  if (t.dims) {
    const ok = t.dims.length === 0 || (t.dims.length === 1 &&
      (t.dims[0] === null || t.dims[0] === 1 || t.dims[0] === batch));
    if (!ok) {
      throw fail(`input "${t.name}" (t) is ${showDims(t.dims)}; t must be [B], [1] or a scalar`);
    }
    tDims = t.dims.length === 0 ? "scalar" : t.dims[0] === 1 && batch !== 1 ? "one" : "batch";
  }
  let labelType: ModelCall["labelType"] = null;
  if (contract.inputs.y !== undefined) {
    const y = find(signature.inputs, contract.inputs.y, "input", "inputs.y");
    if (y.type !== "int64" && y.type !== "int32" && y.type !== "float") {
      throw fail(`input "${y.name}" (label) is ${y.type}; labels are int64, int32 or float`);
    }
    if (y.dims && (y.dims.length !== 1 || (y.dims[0] !== null && y.dims[0] !== batch))) {
      throw fail(`input "${y.name}" (label) is ${showDims(y.dims)}; labels must be [B]`);
    }
    labelType = y.type;
  }
  return { batch, tDims, labelType };
}
