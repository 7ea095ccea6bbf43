// A small builder for ONNX graphs (ModelProto bytes through onnx-proto) and a thin session helper
// for onnxruntime-node. Hot paths in sia are ONNX graphs that sia writes itself.

import onnxProto from "onnx-proto";
import * as ort from "onnxruntime-node";

const { onnx } = onnxProto;
type ElemType = "float" | "int64" | "double";
const ELEM: Record<ElemType, number> = {
  float: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
  double: onnx.TensorProto.DataType.DOUBLE,
};

export type Attribute =
  | { readonly int: number }
  | { readonly float: number }
  | { readonly ints: readonly number[] }
  | { readonly floats: readonly number[] }
  | { readonly string: string };

function attribute(name: string, a: Attribute) {
  const T = onnx.AttributeProto.AttributeType;
  if ("int" in a) return { name, type: T.INT, i: a.int };
  if ("float" in a) return { name, type: T.FLOAT, f: a.float };
  if ("ints" in a) return { name, type: T.INTS, ints: [...a.ints] };
  if ("floats" in a) return { name, type: T.FLOATS, floats: [...a.floats] };
  return { name, type: T.STRING, s: new TextEncoder().encode(a.string) };
}

function valueInfo(name: string, elem: ElemType, dims: readonly (number | string)[]) {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM[elem],
        shape: {
          dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })),
        },
      },
    },
  };
}

export class GraphBuilder {
  readonly #nodes: onnxProto.onnx.INodeProto[] = [];
  readonly #inputs: onnxProto.onnx.IValueInfoProto[] = [];
  readonly #outputs: onnxProto.onnx.IValueInfoProto[] = [];
  readonly #initializers: onnxProto.onnx.ITensorProto[] = [];
  #counter = 0;

  constructor(readonly name: string) {}

  input(name: string, elem: ElemType, dims: readonly (number | string)[]): string {
    this.#inputs.push(valueInfo(name, elem, dims));
    return name;
  }

  output(name: string, elem: ElemType, dims: readonly (number | string)[]): string {
    this.#outputs.push(valueInfo(name, elem, dims));
    return name;
  }

  /** A constant tensor stored in the model. */
  constant(name: string, values: Float32Array | BigInt64Array, dims: readonly number[]): string {
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    this.#initializers.push({
      name,
      dataType: values instanceof Float32Array ? ELEM.float : ELEM.int64,
      dims: [...dims],
      rawData: bytes.slice(),
    });
    return name;
  }

  /** Adds a node; returns its output names (fresh names unless given). */
  node(
    op: string,
    inputs: readonly string[],
    options: { outputs?: readonly string[] | number; attributes?: Record<string, Attribute> } = {},
  ): string[] {
    const outputs = typeof options.outputs === "object" ? [...options.outputs] : Array.from(
      { length: options.outputs ?? 1 },
      () => `${op.toLowerCase()}_${this.#counter++}`,
    );
    this.#nodes.push({
      opType: op,
      input: [...inputs],
      output: outputs,
      name: `${op}_${this.#counter++}`,
      attribute: Object.entries(options.attributes ?? {}).map(([k, v]) => attribute(k, v)),
    });
    return outputs;
  }

  /** Serialised ModelProto (IR 8, default opset). */
  build(opset = 17): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: "sia",
      opsetImport: [{ domain: "", version: opset }],
      graph: {
        name: this.name,
        node: this.#nodes,
        input: this.#inputs,
        output: this.#outputs,
        initializer: this.#initializers,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

/** Intra-op threads: every core, as the peers use every core they are given. */
export function defaultThreads(): number {
  return navigator.hardwareConcurrency || 1;
}

export function createSession(
  model: Uint8Array,
  threads = defaultThreads(),
): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(model, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: "all",
    executionMode: "sequential",
  });
}

export { ort };
