// oneDNN 2.x (Debian's libdnnl2, the library PyTorch's CPU convolutions run on) through Deno FFI:
// convolution forward, backward-data and backward-weights on float32 activations in NHWC, held in
// JavaScript typed arrays that oneDNN reads and writes in place; weights in the blocked layout
// oneDNN picks, reordered from and to ONNX's OIHW once per call of setWeights / backwardWeights.
// Where the library is absent (or SIA_ENGINE=onnxruntime), openDnnl returns null and callers keep
// the onnxruntime path.

/** sizeof(dnnl_memory_desc_t) and sizeof(dnnl_convolution_desc_t) in oneDNN 2.x on x86-64. */
const MD_BYTES = 696;
const CONV_DESC_BYTES = 5976;

const F32 = 3;
const TAG_ANY = 1;
const TAG_NCHW = 5; // dnnl_nchw = dnnl_oihw = dnnl_abcd
const TAG_NHWC = 20; // dnnl_nhwc = dnnl_acdb
const FORWARD_TRAINING = 64;
const CONV_DIRECT = 1;
const ENGINE_CPU = 1;
const STREAM_IN_ORDER = 1;
const ARG = { src: 1, dst: 17, weights: 33, diffSrc: 129, diffDst: 145, diffWeights: 161 };
const QUERY = { weights: 131, diffWeights: 132 };

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
function primitive(dnnl: Dnnl, op: Uint8Array<ArrayBuffer>, hint: Ptr): { pd: Ptr; prim: Ptr } {
  const out = new BigUint64Array(1);
  check(dnnl.lib.dnnl_primitive_desc_create(u8(out), op, null, dnnl.engine, hint), "pd_create");
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
  readonly #user: { src: Ptr; dst: Ptr; diffSrc: Ptr; diffDst: Ptr; weights: Ptr; dw: Ptr };
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
    const none = null;
    this.#user = {
      src: memory(dnnl, src, none),
      dst: memory(dnnl, dst, none),
      diffSrc: memory(dnnl, src, none),
      diffDst: memory(dnnl, dst, none),
      weights: memory(dnnl, wUser, none),
      dw: memory(dnnl, wUser, none),
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
      ...Object.values(this.#user),
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

  #run(prim: Ptr, args: [number, Ptr][]): void {
    args.forEach(([arg, mem], i) => {
      this.#args[2 * i] = BigInt(arg);
      this.#args[2 * i + 1] = BigInt(Deno.UnsafePointer.value(mem));
    });
    const lib = this.#dnnl.lib;
    check(
      lib.dnnl_primitive_execute(prim, this.#dnnl.stream, args.length, u8(this.#args)),
      "execute",
    );
    check(lib.dnnl_stream_wait(this.#dnnl.stream), "stream_wait");
  }

  #bind(mem: Ptr, data: Float32Array): Ptr {
    check(this.#dnnl.lib.dnnl_memory_set_data_handle(mem, Deno.UnsafePointer.of(data)), "handle");
    return mem;
  }

  /** Reorders OIHW weights into the layouts the forward and backward-data passes use. */
  setWeights(w: Float32Array): void {
    const user = this.#bind(this.#user.weights, w);
    this.#run(this.#toFwd, [[ARG.src, user], [ARG.dst, this.#weightsFwd]]);
    if (this.#toBwd) this.#run(this.#toBwd, [[ARG.src, user], [ARG.dst, this.#weightsBwd]]);
  }

  /** y = conv(x) with the weights last set. */
  forward(x: Float32Array, y: Float32Array): void {
    this.#run(this.#forward, [
      [ARG.src, this.#bind(this.#user.src, x)],
      [ARG.weights, this.#weightsFwd],
      [ARG.dst, this.#bind(this.#user.dst, y)],
    ]);
  }

  /** dx from dy with the weights last set. */
  backwardData(dy: Float32Array, dx: Float32Array): void {
    this.#run(this.#backwardData, [
      [ARG.diffDst, this.#bind(this.#user.diffDst, dy)],
      [ARG.weights, this.#weightsBwd],
      [ARG.diffSrc, this.#bind(this.#user.diffSrc, dx)],
    ]);
  }

  /** dW (OIHW) from x and dy. */
  backwardWeights(x: Float32Array, dy: Float32Array, dw: Float32Array): void {
    this.#run(this.#backwardWeights, [
      [ARG.src, this.#bind(this.#user.src, x)],
      [ARG.diffDst, this.#bind(this.#user.diffDst, dy)],
      [ARG.diffWeights, this.#diffWeights],
    ]);
    this.#run(this.#fromDiff, [[ARG.src, this.#diffWeights], [
      ARG.dst,
      this.#bind(this.#user.dw, dw),
    ]]);
  }

  release(): void {
    const lib = this.#dnnl.lib;
    for (const p of this.#prims) lib.dnnl_primitive_destroy(p);
    for (const p of this.#pds) lib.dnnl_primitive_desc_destroy(p);
    for (const m of this.#owned) lib.dnnl_memory_destroy(m);
  }
}
