// oneDNN 2.x (Debian's libdnnl2, the library PyTorch's CPU convolutions run on) through Deno FFI:
// convolution forward, backward-data and backward-weights on float32 activations in NHWC, held in
// JavaScript typed arrays that oneDNN reads and writes in place; weights in the blocked layout
// oneDNN picks, reordered from and to ONNX's OIHW once per call of setWeights / backwardWeights.
// Where the library is absent (or SIA_ENGINE=onnxruntime), openDnnl returns null and callers keep
// the onnxruntime path.

/** sizeof(dnnl_memory_desc_t) and of the op descriptors in oneDNN 2.x on x86-64. */
const MD_BYTES = 696;
const CONV_DESC_BYTES = 5976;
const BNORM_DESC_BYTES = 3496;
const POOL_DESC_BYTES = 3192;
const BINARY_DESC_BYTES = 2096;
const ELTWISE_DESC_BYTES = 1416;
const BINARY_ADD = 131056;
const RELU = 31;
const RELU_USE_DST = 256; // dnnl_eltwise_relu_use_dst_for_bwd

const F32 = 3;
const TAG_ANY = 1;
const TAG_NCHW = 5; // dnnl_nchw = dnnl_oihw = dnnl_abcd
const TAG_NHWC = 20; // dnnl_nhwc = dnnl_acdb
const TAG_A = 2;
const FORWARD_TRAINING = 64;
const BACKWARD = 128;
const BN_USE_SCALE = 8;
const BN_USE_SHIFT = 16;
const BN_FUSE_RELU = 4;
const POOL_MAX = 511;
const POOL_AVG = 1023; // dnnl_pooling_avg_exclude_padding (no padding here)
const CONV_DIRECT = 1;
const ENGINE_CPU = 1;
const STREAM_IN_ORDER = 1;
const ARG = {
  src: 1,
  src1: 2,
  dst: 17,
  weights: 33,
  diffSrc: 129,
  diffDst: 145,
  diffWeights: 161,
  mean: 49,
  variance: 50,
  scale: 51,
  shift: 52,
  diffScale: 255,
  diffShift: 256,
  workspace: 64,
};
const QUERY = { weights: 131, diffWeights: 132, workspace: 135 };

const SYMBOLS = {
  dnnl_version: { parameters: [], result: "pointer" },
  dnnl_engine_create: { parameters: ["buffer", "i32", "usize"], result: "i32" },
  dnnl_stream_create: { parameters: ["buffer", "pointer", "u32"], result: "i32" },
  dnnl_memory_desc_init_by_tag: {
    parameters: ["buffer", "i32", "buffer", "i32", "i32"],
    result: "i32",
  },
  dnnl_convolution_forward_desc_init: {
    parameters: [
      "buffer",
      "i32",
      "i32",
      "buffer",
      "buffer",
      "pointer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
    ],
    result: "i32",
  },
  dnnl_convolution_backward_data_desc_init: {
    parameters: ["buffer", "i32", "buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  dnnl_convolution_backward_weights_desc_init: {
    parameters: [
      "buffer",
      "i32",
      "buffer",
      "buffer",
      "pointer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
    ],
    result: "i32",
  },
  dnnl_primitive_desc_create: {
    parameters: ["buffer", "buffer", "pointer", "pointer", "pointer"],
    result: "i32",
  },
  dnnl_primitive_desc_query_md: { parameters: ["pointer", "i32", "i32"], result: "pointer" },
  dnnl_primitive_desc_destroy: { parameters: ["pointer"], result: "i32" },
  dnnl_primitive_create: { parameters: ["buffer", "pointer"], result: "i32" },
  dnnl_primitive_destroy: { parameters: ["pointer"], result: "i32" },
  dnnl_primitive_execute: { parameters: ["pointer", "pointer", "i32", "buffer"], result: "i32" },
  dnnl_memory_create: { parameters: ["buffer", "pointer", "pointer", "pointer"], result: "i32" },
  dnnl_memory_destroy: { parameters: ["pointer"], result: "i32" },
  dnnl_memory_set_data_handle: { parameters: ["pointer", "pointer"], result: "i32" },
  dnnl_memory_desc_equal: { parameters: ["pointer", "pointer"], result: "i32" },
  dnnl_reorder_primitive_desc_create: {
    parameters: ["buffer", "pointer", "pointer", "pointer", "pointer", "pointer"],
    result: "i32",
  },
  dnnl_stream_wait: { parameters: ["pointer"], result: "i32" },
  dnnl_batch_normalization_forward_desc_init: {
    parameters: ["buffer", "i32", "buffer", "f32", "u32"],
    result: "i32",
  },
  dnnl_batch_normalization_backward_desc_init: {
    parameters: ["buffer", "i32", "buffer", "buffer", "f32", "u32"],
    result: "i32",
  },
  dnnl_pooling_forward_desc_init: {
    parameters: [
      "buffer",
      "i32",
      "i32",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
    ],
    result: "i32",
  },
  dnnl_pooling_backward_desc_init: {
    parameters: ["buffer", "i32", "buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  dnnl_binary_desc_init: {
    parameters: ["buffer", "i32", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  dnnl_eltwise_forward_desc_init: {
    parameters: ["buffer", "i32", "i32", "buffer", "f32", "f32"],
    result: "i32",
  },
  dnnl_eltwise_backward_desc_init: {
    parameters: ["buffer", "i32", "buffer", "buffer", "f32", "f32"],
    result: "i32",
  },
  dnnl_primitive_attr_create: { parameters: ["buffer"], result: "i32" },
  dnnl_primitive_attr_destroy: { parameters: ["pointer"], result: "i32" },
  dnnl_post_ops_create: { parameters: ["buffer"], result: "i32" },
  dnnl_post_ops_destroy: { parameters: ["pointer"], result: "i32" },
  dnnl_post_ops_append_eltwise: {
    parameters: ["pointer", "f32", "i32", "f32", "f32"],
    result: "i32",
  },
  dnnl_primitive_attr_set_post_ops: { parameters: ["pointer", "pointer"], result: "i32" },
} as const;

type Lib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
type Ptr = Deno.PointerValue;

/** DNNL_MEMORY_ALLOCATE: the library allocates the buffer. */
const ALLOCATE = Deno.UnsafePointer.create(0xffffffffffffffffn);

export interface Dnnl {
  /** "2.6.3". */
  readonly version: string;
  readonly lib: Lib;
  readonly engine: Ptr;
  readonly stream: Ptr;
}

let opened: Dnnl | null | undefined;

/**
 * The library, opened once; null where libdnnl.so.2 does not load or SIA_ENGINE=onnxruntime.
 * oneDNN's OpenMP pool reads OMP_NUM_THREADS and OMP_WAIT_POLICY when it loads: unset, they become
 * `threads` and PASSIVE, so its idle threads sleep while onnxruntime's run on the same cores.
 */
export function openDnnl(threads = navigator.hardwareConcurrency || 1): Dnnl | null {
  if (opened !== undefined) return opened;
  if (Deno.env.get("SIA_ENGINE") === "onnxruntime") return (opened = null);
  if (!Deno.env.get("OMP_NUM_THREADS")) Deno.env.set("OMP_NUM_THREADS", `${threads}`);
  if (!Deno.env.get("OMP_WAIT_POLICY")) Deno.env.set("OMP_WAIT_POLICY", "PASSIVE");
  let lib: Lib;
  try {
    lib = Deno.dlopen("libdnnl.so.2", SYMBOLS).symbols;
  } catch {
    return (opened = null);
  }
  const v = new Deno.UnsafePointerView(lib.dnnl_version()!);
  const version = `${v.getInt32(0)}.${v.getInt32(4)}.${v.getInt32(8)}`;
  if (v.getInt32(0) !== 2) return (opened = null);
  const out = new BigUint64Array(1);
  check(lib.dnnl_engine_create(u8(out), ENGINE_CPU, 0n), "engine_create");
  const engine = Deno.UnsafePointer.create(out[0]);
  check(lib.dnnl_stream_create(u8(out), engine, STREAM_IN_ORDER), "stream_create");
  return (opened = { version, lib, engine, stream: Deno.UnsafePointer.create(out[0]) });
}

function check(status: number, what: string): void {
  if (status !== 0) throw new Error(`oneDNN ${what}: status ${status}`);
}

function u8(a: ArrayBufferView): Uint8Array<ArrayBuffer> {
  return new Uint8Array(a.buffer as ArrayBuffer, a.byteOffset, a.byteLength);
}

function dims(values: readonly number[]): BigInt64Array<ArrayBuffer> {
  const d = new BigInt64Array(12);
  values.forEach((v, i) => (d[i] = BigInt(v)));
  return d;
}

function desc(lib: Lib, shape: readonly number[], tag: number): Uint8Array<ArrayBuffer> {
  const md = new Uint8Array(MD_BYTES);
  check(lib.dnnl_memory_desc_init_by_tag(md, shape.length, u8(dims(shape)), F32, tag), "md_init");
  return md;
}

/** Creates a primitive (and keeps its descriptor for queries). */
function primitive(
  dnnl: Dnnl,
  op: Uint8Array<ArrayBuffer>,
  hint: Ptr,
  attr: Ptr = null,
): { pd: Ptr; prim: Ptr } {
  const out = new BigUint64Array(1);
  check(dnnl.lib.dnnl_primitive_desc_create(u8(out), op, attr, dnnl.engine, hint), "pd_create");
  const pd = Deno.UnsafePointer.create(out[0]);
  check(dnnl.lib.dnnl_primitive_create(u8(out), pd), "primitive_create");
  return { pd, prim: Deno.UnsafePointer.create(out[0]) };
}

function memory(dnnl: Dnnl, md: Ptr | Uint8Array<ArrayBuffer>, handle: Ptr): Ptr {
  const out = new BigUint64Array(1);
  const p = md instanceof Uint8Array ? Deno.UnsafePointer.of(md) : md;
  check(dnnl.lib.dnnl_memory_create(u8(out), p, dnnl.engine, handle), "memory_create");
  return Deno.UnsafePointer.create(out[0]);
}

function reorder(dnnl: Dnnl, from: Ptr, to: Ptr): Ptr {
  const out = new BigUint64Array(1);
  check(
    dnnl.lib.dnnl_reorder_primitive_desc_create(u8(out), from, dnnl.engine, to, dnnl.engine, null),
    "reorder_pd",
  );
  const pd = Deno.UnsafePointer.create(out[0]);
  check(dnnl.lib.dnnl_primitive_create(u8(out), pd), "reorder");
  dnnl.lib.dnnl_primitive_desc_destroy(pd);
  return Deno.UnsafePointer.create(out[0]);
}

/** One convolution layer's shapes; activations NHWC, weights OIHW (as ONNX has them). */
export interface ConvShape {
  readonly batch: number;
  readonly inChannels: number;
  readonly height: number;
  readonly width: number;
  readonly outChannels: number;
  readonly kernel: number;
  readonly stride: number;
  readonly pad: number;
}

/**
 * The three passes of one conv layer (no bias), built once for fixed shapes. Typed arrays are
 * passed by pointer and must stay the sizes the shapes give.
 */
export class DnnlConv {
  readonly outHeight: number;
  readonly outWidth: number;
  readonly #dnnl: Dnnl;
  readonly #user: Record<"src" | "dst" | "diffSrc" | "diffDst" | "weights" | "dw", Bound>;
  readonly #forward: Ptr;
  readonly #backwardData: Ptr;
  readonly #backwardWeights: Ptr;
  /** oneDNN's weights for the forward and backward-data passes (one memory when they agree). */
  readonly #weightsFwd: Ptr;
  readonly #weightsBwd: Ptr;
  readonly #diffWeights: Ptr;
  readonly #toFwd: Ptr;
  readonly #toBwd: Ptr | null;
  readonly #fromDiff: Ptr;
  readonly #args = new BigUint64Array(8);
  readonly #owned: Ptr[] = [];

  constructor(dnnl: Dnnl, s: ConvShape) {
    this.#dnnl = dnnl;
    const { lib } = dnnl;
    const size = (n: number) => Math.floor((n + 2 * s.pad - s.kernel) / s.stride) + 1;
    this.outHeight = size(s.height);
    this.outWidth = size(s.width);
    const src = desc(lib, [s.batch, s.inChannels, s.height, s.width], TAG_NHWC);
    const dst = desc(lib, [s.batch, s.outChannels, this.outHeight, this.outWidth], TAG_NHWC);
    const wShape = [s.outChannels, s.inChannels, s.kernel, s.kernel];
    const wAny = desc(lib, wShape, TAG_ANY);
    const wUser = desc(lib, wShape, TAG_NCHW);
    const strides = u8(dims([s.stride, s.stride]));
    const pads = u8(dims([s.pad, s.pad]));
    // The right padding that makes (in + pl + pr - k) / stride + 1 = out exactly.
    const padR = (n: number, out: number) => (out - 1) * s.stride + s.kernel - n - s.pad;
    const padsR = u8(dims([padR(s.height, this.outHeight), padR(s.width, this.outWidth)]));
    const op = new Uint8Array(CONV_DESC_BYTES);
    check(
      lib.dnnl_convolution_forward_desc_init(
        op,
        FORWARD_TRAINING,
        CONV_DIRECT,
        src,
        wAny,
        null,
        dst,
        strides,
        pads,
        padsR,
      ),
      "conv_fwd_desc",
    );
    const fwd = primitive(dnnl, op, null);
    check(
      lib.dnnl_convolution_backward_data_desc_init(
        op,
        CONV_DIRECT,
        src,
        wAny,
        dst,
        strides,
        pads,
        padsR,
      ),
      "conv_bwd_data_desc",
    );
    const bwdData = primitive(dnnl, op, fwd.pd);
    check(
      lib.dnnl_convolution_backward_weights_desc_init(
        op,
        CONV_DIRECT,
        src,
        wAny,
        null,
        dst,
        strides,
        pads,
        padsR,
      ),
      "conv_bwd_weights_desc",
    );
    const bwdWeights = primitive(dnnl, op, fwd.pd);
    this.#forward = fwd.prim;
    this.#backwardData = bwdData.prim;
    this.#backwardWeights = bwdWeights.prim;
    this.#user = {
      src: new Bound(dnnl, src),
      dst: new Bound(dnnl, dst),
      diffSrc: new Bound(dnnl, src),
      diffDst: new Bound(dnnl, dst),
      weights: new Bound(dnnl, wUser),
      dw: new Bound(dnnl, wUser),
    };
    const wFwd = lib.dnnl_primitive_desc_query_md(fwd.pd, QUERY.weights, 0);
    const wBwd = lib.dnnl_primitive_desc_query_md(bwdData.pd, QUERY.weights, 0);
    const dwMd = lib.dnnl_primitive_desc_query_md(bwdWeights.pd, QUERY.diffWeights, 0);
    this.#weightsFwd = memory(dnnl, wFwd, ALLOCATE);
    const shared = lib.dnnl_memory_desc_equal(wFwd, wBwd) === 1;
    this.#weightsBwd = shared ? this.#weightsFwd : memory(dnnl, wBwd, ALLOCATE);
    this.#diffWeights = memory(dnnl, dwMd, ALLOCATE);
    const userMd = Deno.UnsafePointer.of(wUser);
    this.#toFwd = reorder(dnnl, userMd, wFwd);
    this.#toBwd = shared ? null : reorder(dnnl, userMd, wBwd);
    this.#fromDiff = reorder(dnnl, dwMd, userMd);
    this.#owned.push(
      ...Object.values(this.#user).map((b) => b.mem),
      this.#weightsFwd,
      ...(shared ? [] : [this.#weightsBwd]),
      this.#diffWeights,
    );
    this.#prims = [
      fwd.prim,
      bwdData.prim,
      bwdWeights.prim,
      this.#toFwd,
      ...(this.#toBwd ? [this.#toBwd] : []),
      this.#fromDiff,
    ];
    this.#pds = [fwd.pd, bwdData.pd, bwdWeights.pd];
  }

  readonly #prims: Ptr[];
  readonly #pds: Ptr[];

  #exec(prim: Ptr, args: [number, Ptr][]): void {
    execute(this.#dnnl, prim, args, this.#args);
  }

  /** Reorders OIHW weights into the layouts the forward and backward-data passes use. */
  setWeights(w: Float32Array): void {
    const user = this.#user.weights.to(w);
    this.#exec(this.#toFwd, [[ARG.src, user], [ARG.dst, this.#weightsFwd]]);
    if (this.#toBwd) this.#exec(this.#toBwd, [[ARG.src, user], [ARG.dst, this.#weightsBwd]]);
  }

  /** y = conv(x) with the weights last set. */
  forward(x: Float32Array, y: Float32Array): void {
    this.#exec(this.#forward, [
      [ARG.src, this.#user.src.to(x)],
      [ARG.weights, this.#weightsFwd],
      [ARG.dst, this.#user.dst.to(y)],
    ]);
  }

  /** dx from dy with the weights last set. */
  backwardData(dy: Float32Array, dx: Float32Array): void {
    this.#exec(this.#backwardData, [
      [ARG.diffDst, this.#user.diffDst.to(dy)],
      [ARG.weights, this.#weightsBwd],
      [ARG.diffSrc, this.#user.diffSrc.to(dx)],
    ]);
  }

  /** dW (OIHW) from x and dy. */
  backwardWeights(x: Float32Array, dy: Float32Array, dw: Float32Array): void {
    this.#exec(this.#backwardWeights, [
      [ARG.src, this.#user.src.to(x)],
      [ARG.diffDst, this.#user.diffDst.to(dy)],
      [ARG.diffWeights, this.#diffWeights],
    ]);
    this.#exec(this.#fromDiff, [[ARG.src, this.#diffWeights], [
      ARG.dst,
      this.#user.dw.to(dw),
    ]]);
  }

  release(): void {
    const lib = this.#dnnl.lib;
    for (const p of this.#prims) lib.dnnl_primitive_destroy(p);
    destroy(this.#dnnl, [], this.#pds, this.#owned);
  }
}

/** Executes a primitive with (argument, memory) pairs and waits for it. */
function execute(dnnl: Dnnl, prim: Ptr, args: [number, Ptr][], buffer: BigUint64Array): void {
  args.forEach(([arg, mem], i) => {
    buffer[2 * i] = BigInt(arg);
    buffer[2 * i + 1] = BigInt(Deno.UnsafePointer.value(mem));
  });
  check(dnnl.lib.dnnl_primitive_execute(prim, dnnl.stream, args.length, u8(buffer)), "execute");
  check(dnnl.lib.dnnl_stream_wait(dnnl.stream), "stream_wait");
}

/** The workspace argument of a primitive that keeps one (max pooling, a fused ReLU's mask). */
function workspaceArg(workspace: Ptr | null): [number, Ptr][] {
  return workspace ? [[ARG.workspace, workspace]] : [];
}

/** Frees what a kernel built: primitives with their descriptors, lone descriptors, memory. */
function destroy(
  dnnl: Dnnl,
  primitives: readonly { pd: Ptr; prim: Ptr }[],
  descriptors: readonly Ptr[],
  memories: readonly Ptr[],
): void {
  const { lib } = dnnl;
  for (const p of primitives) {
    lib.dnnl_primitive_destroy(p.prim);
    lib.dnnl_primitive_desc_destroy(p.pd);
  }
  for (const pd of descriptors) lib.dnnl_primitive_desc_destroy(pd);
  for (const m of memories) lib.dnnl_memory_destroy(m);
}

/** A training kernel's forward primitive, its backward (hinted by the forward) and workspace. */
interface TrainingPair {
  readonly fwd: { pd: Ptr; prim: Ptr };
  readonly bwd: { pd: Ptr; prim: Ptr };
  readonly workspace: Ptr | null;
}

/**
 * Builds a TrainingPair from one operation-descriptor buffer, initialised first for the forward
 * pass and then again for the backward; the workspace (max pooling's argmax, a fused ReLU's mask)
 * is allocated as the forward's descriptor asks.
 */
function trainingPair(
  dnnl: Dnnl,
  bytes: number,
  initForward: (op: Uint8Array<ArrayBuffer>) => number,
  initBackward: (op: Uint8Array<ArrayBuffer>) => number,
  name: string,
  withWorkspace: boolean,
): TrainingPair {
  const op = new Uint8Array(bytes);
  check(initForward(op), `${name}_fwd_desc`);
  const fwd = primitive(dnnl, op, null);
  check(initBackward(op), `${name}_bwd_desc`);
  const bwd = primitive(dnnl, op, fwd.pd);
  const workspace = withWorkspace
    ? memory(dnnl, dnnl.lib.dnnl_primitive_desc_query_md(fwd.pd, QUERY.workspace, 0), ALLOCATE)
    : null;
  return { fwd, bwd, workspace };
}

function destroyPair(dnnl: Dnnl, pair: TrainingPair, bounds: readonly Bound[]): void {
  destroy(dnnl, [pair.fwd, pair.bwd], [], [
    ...bounds.map((b) => b.mem),
    ...(pair.workspace ? [pair.workspace] : []),
  ]);
}

/** Memory objects over caller-owned typed arrays, re-pointed at each call. */
class Bound {
  readonly #dnnl: Dnnl;
  readonly mem: Ptr;
  constructor(dnnl: Dnnl, md: Uint8Array<ArrayBuffer>) {
    this.#dnnl = dnnl;
    this.mem = memory(dnnl, md, null);
  }
  to(data: Float32Array): Ptr {
    check(
      this.#dnnl.lib.dnnl_memory_set_data_handle(this.mem, Deno.UnsafePointer.of(data)),
      "handle",
    );
    return this.mem;
  }
}

/** An activation's shape: [N, C, H, W], held NHWC. */
export interface ImageShape {
  readonly batch: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
}

/**
 * Batch normalisation from batch statistics (training), optionally with the ReLU that follows it
 * fused in (its mask kept in a workspace for the backward pass). mean and variance (biased) are
 * outputs of forward and inputs of backward.
 */
export class DnnlBatchNorm {
  readonly #dnnl: Dnnl;
  readonly #pair: TrainingPair;
  readonly #data: Bound[];
  readonly #vec: Bound[];
  readonly #args = new BigUint64Array(20);

  constructor(dnnl: Dnnl, s: ImageShape, eps: number, relu: boolean) {
    this.#dnnl = dnnl;
    const { lib } = dnnl;
    const data = desc(lib, [s.batch, s.channels, s.height, s.width], TAG_NHWC);
    const vec = desc(lib, [s.channels], TAG_A);
    const flags = BN_USE_SCALE | BN_USE_SHIFT | (relu ? BN_FUSE_RELU : 0);
    this.#pair = trainingPair(
      dnnl,
      BNORM_DESC_BYTES,
      (op) =>
        lib.dnnl_batch_normalization_forward_desc_init(op, FORWARD_TRAINING, data, eps, flags),
      (op) => lib.dnnl_batch_normalization_backward_desc_init(op, BACKWARD, data, data, eps, flags),
      "bn",
      relu,
    );
    this.#data = [0, 1, 2, 3].map(() => new Bound(dnnl, data));
    this.#vec = [0, 1, 2, 3, 4, 5].map(() => new Bound(dnnl, vec));
  }

  /** The arguments both passes take: the affine parameters, the batch statistics, the workspace. */
  #statistics(
    scale: Float32Array,
    shift: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
  ): [number, Ptr][] {
    const v = this.#vec;
    return [
      [ARG.scale, v[0].to(scale)],
      [ARG.shift, v[1].to(shift)],
      [ARG.mean, v[2].to(mean)],
      [ARG.variance, v[3].to(variance)],
      ...workspaceArg(this.#pair.workspace),
    ];
  }

  forward(
    x: Float32Array,
    y: Float32Array,
    scale: Float32Array,
    shift: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
  ): void {
    const d = this.#data;
    execute(this.#dnnl, this.#pair.fwd.prim, [
      [ARG.src, d[0].to(x)],
      [ARG.dst, d[1].to(y)],
      ...this.#statistics(scale, shift, mean, variance),
    ], this.#args);
  }

  /** dx, dscale, dshift from dy (the gradient of the output, after the fused ReLU if any); oneDNN
   * 2.6 wants the shift as an input too. */
  backward(
    x: Float32Array,
    dy: Float32Array,
    scale: Float32Array,
    shift: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
    dx: Float32Array,
    dscale: Float32Array,
    dshift: Float32Array,
  ): void {
    const [d, v] = [this.#data, this.#vec];
    execute(this.#dnnl, this.#pair.bwd.prim, [
      [ARG.src, d[0].to(x)],
      [ARG.diffDst, d[2].to(dy)],
      ...this.#statistics(scale, shift, mean, variance),
      [ARG.diffSrc, d[3].to(dx)],
      [ARG.diffScale, v[4].to(dscale)],
      [ARG.diffShift, v[5].to(dshift)],
    ], this.#args);
  }

  release(): void {
    destroyPair(this.#dnnl, this.#pair, [...this.#data, ...this.#vec]);
  }
}

/**
 * Max pooling (kernel = stride, sizes that divide exactly; the argmax kept in a workspace) or
 * global average pooling (kernel = the whole image).
 */
export class DnnlPool {
  readonly outHeight: number;
  readonly outWidth: number;
  readonly #dnnl: Dnnl;
  readonly #pair: TrainingPair;
  readonly #src: Bound[];
  readonly #dst: Bound[];
  readonly #args = new BigUint64Array(8);

  constructor(dnnl: Dnnl, s: ImageShape, kind: "max" | "average", size: number) {
    this.#dnnl = dnnl;
    const { lib } = dnnl;
    const [kh, kw] = kind === "max" ? [size, size] : [s.height, s.width];
    this.outHeight = Math.floor(s.height / kh);
    this.outWidth = Math.floor(s.width / kw);
    if (this.outHeight * kh !== s.height || this.outWidth * kw !== s.width) {
      throw new Error(`oneDNN pooling: ${s.height}x${s.width} is not a multiple of ${kh}x${kw}`);
    }
    const src = desc(lib, [s.batch, s.channels, s.height, s.width], TAG_NHWC);
    const dst = desc(lib, [s.batch, s.channels, this.outHeight, this.outWidth], TAG_NHWC);
    const strides = u8(dims([kh, kw]));
    const zero = u8(dims([0, 0]));
    const alg = kind === "max" ? POOL_MAX : POOL_AVG;
    this.#pair = trainingPair(
      dnnl,
      POOL_DESC_BYTES,
      (op) =>
        lib.dnnl_pooling_forward_desc_init(
          op,
          FORWARD_TRAINING,
          alg,
          src,
          dst,
          strides,
          strides,
          zero,
          zero,
        ),
      (op) => lib.dnnl_pooling_backward_desc_init(op, alg, src, dst, strides, strides, zero, zero),
      "pool",
      kind === "max",
    );
    this.#src = [new Bound(dnnl, src), new Bound(dnnl, src)];
    this.#dst = [new Bound(dnnl, dst), new Bound(dnnl, dst)];
  }

  forward(x: Float32Array, y: Float32Array): void {
    execute(this.#dnnl, this.#pair.fwd.prim, [
      [ARG.src, this.#src[0].to(x)],
      [ARG.dst, this.#dst[0].to(y)],
      ...workspaceArg(this.#pair.workspace),
    ], this.#args);
  }

  backward(dy: Float32Array, dx: Float32Array): void {
    execute(this.#dnnl, this.#pair.bwd.prim, [
      [ARG.diffDst, this.#dst[1].to(dy)],
      ...workspaceArg(this.#pair.workspace),
      [ARG.diffSrc, this.#src[1].to(dx)],
    ], this.#args);
  }

  release(): void {
    destroyPair(this.#dnnl, this.#pair, [...this.#src, ...this.#dst]);
  }
}

/**
 * y = a + b on NHWC activations, with an optional ReLU applied to the sum (a residual block's
 * join); backwardRelu gives the gradient at the sum from y and dy (dy where y > 0).
 */
export class DnnlAdd {
  readonly #dnnl: Dnnl;
  readonly #add: { pd: Ptr; prim: Ptr };
  readonly #reluFwd: Ptr | null;
  readonly #reluBwd: { pd: Ptr; prim: Ptr } | null;
  readonly #mem: Bound[];
  readonly #args = new BigUint64Array(6);

  constructor(dnnl: Dnnl, s: ImageShape, relu: boolean) {
    this.#dnnl = dnnl;
    const { lib } = dnnl;
    const data = desc(lib, [s.batch, s.channels, s.height, s.width], TAG_NHWC);
    const out = new BigUint64Array(1);
    let attr: Ptr = null;
    if (relu) {
      check(lib.dnnl_primitive_attr_create(u8(out)), "attr_create");
      attr = Deno.UnsafePointer.create(out[0]);
      check(lib.dnnl_post_ops_create(u8(out)), "post_ops_create");
      const ops = Deno.UnsafePointer.create(out[0]);
      check(lib.dnnl_post_ops_append_eltwise(ops, 1, RELU, 0, 0), "post_ops_eltwise");
      check(lib.dnnl_primitive_attr_set_post_ops(attr, ops), "attr_post_ops");
      lib.dnnl_post_ops_destroy(ops);
    }
    const op = new Uint8Array(BINARY_DESC_BYTES);
    check(lib.dnnl_binary_desc_init(op, BINARY_ADD, data, data, data), "binary_desc");
    this.#add = primitive(dnnl, op, null, attr);
    if (attr) lib.dnnl_primitive_attr_destroy(attr);
    if (relu) {
      const e = new Uint8Array(ELTWISE_DESC_BYTES);
      check(
        lib.dnnl_eltwise_forward_desc_init(e, FORWARD_TRAINING, RELU_USE_DST, data, 0, 0),
        "eltwise_fwd_desc",
      );
      check(lib.dnnl_primitive_desc_create(u8(out), e, null, dnnl.engine, null), "eltwise_pd");
      this.#reluFwd = Deno.UnsafePointer.create(out[0]);
      check(lib.dnnl_eltwise_backward_desc_init(e, RELU_USE_DST, data, data, 0, 0), "eltwise_bwd");
      this.#reluBwd = primitive(dnnl, e, this.#reluFwd);
    } else {
      this.#reluFwd = null;
      this.#reluBwd = null;
    }
    this.#mem = [0, 1, 2].map(() => new Bound(dnnl, data));
  }

  forward(a: Float32Array, b: Float32Array, y: Float32Array): void {
    const m = this.#mem;
    execute(this.#dnnl, this.#add.prim, [
      [ARG.src, m[0].to(a)],
      [ARG.src1, m[1].to(b)],
      [ARG.dst, m[2].to(y)],
    ], this.#args);
  }

  backwardRelu(y: Float32Array, dy: Float32Array, dsum: Float32Array): void {
    const m = this.#mem;
    execute(this.#dnnl, this.#reluBwd!.prim, [
      [ARG.dst, m[0].to(y)],
      [ARG.diffDst, m[1].to(dy)],
      [ARG.diffSrc, m[2].to(dsum)],
    ], this.#args);
  }

  release(): void {
    destroy(
      this.#dnnl,
      [this.#add, ...(this.#reluBwd ? [this.#reluBwd] : [])],
      this.#reluFwd ? [this.#reluFwd] : [],
      this.#mem.map((b) => b.mem),
    );
  }
}
