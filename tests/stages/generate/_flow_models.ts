// The closed-form field of a tiny training set written as an ONNX graph that carries the flow
// contract: the exact softmax denoiser over N points, turned into the prediction the contract
// names, in its layout, its data range (the points are given in it) and its time convention. A
// model of each prediction type must make onnx-flow reproduce the closed-form stage's samples.

import { GraphBuilder } from "../../../core/onnx.ts";

export interface FlowModelOptions {
  /** The training points in the model's data scale, [N * d] in NHWC order. */
  readonly points: Float32Array;
  /** [C, H, W]. */
  readonly shape: readonly [number, number, number];
  readonly prediction: "velocity" | "denoiser" | "noise" | "score";
  readonly schedule: "linear" | "trig" | "vp";
  readonly layout: "nchw" | "nhwc";
  readonly time: { readonly dataAt: 0 | 1; readonly scale: number };
  /** Dims of t: [B], [1] or a scalar. */
  readonly tDims?: "batch" | "one" | "scalar";
  /** A fixed batch dimension (default symbolic). */
  readonly batch?: number;
  /** Class of each point: the model then takes an int64 label input "y" and conditions on it. */
  readonly labels?: readonly number[];
  readonly names?: { readonly x?: string; readonly t?: string; readonly out?: string };
}

export function flowModel(o: FlowModelOptions): Uint8Array {
  const [channels, height, width] = o.shape;
  const d = channels * height * width;
  const n = o.points.length / d;
  const g = new GraphBuilder("closed_form_flow");
  const names = { x: "x", t: "t", out: "out", ...o.names };
  const imageDims = o.layout === "nchw" ? [channels, height, width] : [height, width, channels];
  const batch = o.batch ?? "B";
  const tDims = o.tDims ?? "batch";
  g.input(names.x, "float", [batch, ...imageDims]);
  g.input(names.t, "float", tDims === "batch" ? [batch] : tDims === "one" ? [1] : []);
  let k = 0;
  const scalar = (v: number) => g.constant(`c${k++}`, Float32Array.of(v), [1]);
  const ints = (v: number[]) =>
    g.constant(`i${k++}`, BigInt64Array.from(v.map(BigInt)), [v.length]);
  const op = (name: string, inputs: string[], attributes = {}) =>
    g.node(name, inputs, { attributes })[0];
  const mul = (a: string, b: string) => op("Mul", [a, b]);
  const sub = (a: string, b: string) => op("Sub", [a, b]);
  const div = (a: string, b: string) => op("Div", [a, b]);

  // sia's time, one row per query: t = t_model / scale, reversed when data sits at 0.
  const tm = div(op("Reshape", [names.t, ints([-1, 1])]), scalar(o.time.scale));
  const t = o.time.dataAt === 1 ? tm : sub(scalar(1), tm);
  let alpha: string, alphaDot: string, beta: string, betaDot: string;
  if (o.schedule === "linear") {
    [alpha, beta, alphaDot, betaDot] = [sub(scalar(1), t), t, scalar(-1), scalar(1)];
  } else if (o.schedule === "trig") {
    const h = mul(scalar(Math.PI / 2), t);
    [alpha, beta] = [op("Cos", [h]), op("Sin", [h])];
    [alphaDot, betaDot] = [mul(scalar(-Math.PI / 2), beta), mul(scalar(Math.PI / 2), alpha)];
  } else {
    const [bmin, bmax] = [0.1, 20];
    const u = sub(scalar(1), t);
    const l = sub(
      mul(scalar(-(bmax - bmin) / 4), mul(u, u)),
      mul(scalar(bmin / 2), u),
    );
    beta = op("Exp", [l]);
    betaDot = mul(beta, op("Add", [mul(scalar((bmax - bmin) / 2), u), scalar(bmin / 2)]));
    alpha = op("Sqrt", [sub(scalar(1), mul(beta, beta))]);
    alphaDot = op("Neg", [div(mul(beta, betaDot), alpha)]);
  }
  // Queries flat in NHWC order, as the points are.
  const nhwc = o.layout === "nchw"
    ? op("Transpose", [names.x], { perm: { ints: [0, 2, 3, 1] } })
    : names.x;
  const x = op("Reshape", [nhwc, ints([-1, d])]);
  const y = g.constant("points", o.points, [n, d]);
  const diff = sub(
    op("Unsqueeze", [x, ints([1])]),
    mul(op("Reshape", [beta, ints([-1, 1, 1])]), op("Unsqueeze", [y, ints([0])])),
  );
  const dist2 = op("ReduceSum", [mul(diff, diff), ints([2])], { keepdims: { int: 0 } });
  let logits = op("Neg", [div(dist2, mul(scalar(2), mul(alpha, alpha)))]);
  if (o.labels) {
    g.input("y", "int64", [batch]);
    const query = op("Unsqueeze", [op("Cast", ["y"], { to: { int: 1 } }), ints([1])]);
    const classes = g.constant("classes", Float32Array.from(o.labels), [1, n]);
    const same = op("Equal", [query, classes]);
    logits = op("Add", [logits, op("Where", [same, scalar(0), scalar(-1e30)])]);
  }
  const m = op("MatMul", [op("Softmax", [logits], { axis: { int: 1 } }), y]);
  const residual = sub(x, mul(beta, m));
  let prediction: string;
  if (o.prediction === "denoiser") prediction = m;
  else if (o.prediction === "noise") prediction = div(residual, alpha);
  else if (o.prediction === "score") prediction = op("Neg", [div(residual, mul(alpha, alpha))]);
  else {
    const velocity = op("Add", [mul(betaDot, m), mul(div(alphaDot, alpha), residual)]);
    // With data at 0 the model's time runs the other way, and so does its velocity.
    prediction = o.time.dataAt === 1 ? velocity : op("Neg", [velocity]);
  }
  const image = op("Reshape", [prediction, ints([-1, height, width, channels])]);
  if (o.layout === "nchw") {
    g.node("Transpose", [image], {
      outputs: [names.out],
      attributes: { perm: { ints: [0, 3, 1, 2] } },
    });
  } else g.node("Identity", [image], { outputs: [names.out] });
  g.output(names.out, "float", [batch, ...imageDims]);
  return g.build();
}

/** flow.json for a model built by flowModel. */
export function flowContract(o: FlowModelOptions, range: readonly [number, number]) {
  return {
    inputs: { x: o.names?.x ?? "x", t: o.names?.t ?? "t", ...(o.labels ? { y: "y" } : {}) },
    output: o.names?.out ?? "out",
    layout: o.layout,
    prediction: o.prediction,
    schedule: o.schedule,
    range,
    time: o.time,
    shape: o.shape,
    ...(o.labels ? { conditional: true } : {}),
  };
}

/** The contract of a [1, 4, 4] NCHW velocity model with inputs x, t and output out. */
export const SMALL_CONTRACT = {
  inputs: { x: "x", t: "t" },
  output: "out",
  layout: "nchw",
  prediction: "velocity",
  schedule: "linear",
  range: [0, 1],
  time: { dataAt: 1, scale: 1 },
  shape: [1, 4, 4],
};
