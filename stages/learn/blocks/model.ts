// Models as data. One description builds the tfjs oracle (tfjs.ts), the ONNX forward graph
// (../graph/forward.ts) and, later, the training graph; parameters live outside the description,
// in a Params map keyed by the names below, so every builder sees the same weights.

export type Block =
  /**
   * 2-D convolution, odd kernel; padding "same" pads (kernel - 1) / 2 on every side (PyTorch's
   * padding=k//2, so stride 2 halves the size), "valid" pads nothing.
   */
  | {
    readonly kind: "conv";
    readonly out: number;
    readonly kernel: number;
    readonly stride: number;
    readonly bias: boolean;
    readonly padding?: "same" | "valid";
    /** Weight and bias start at zero (a residual branch that starts as the identity). */
    readonly zero?: boolean;
  }
  /** Batch normalisation over N, H, W (or N for vectors); eps 1e-5, momentum 0.1 as PyTorch. */
  | { readonly kind: "batchnorm" }
  | { readonly kind: "relu" }
  /** Max pooling with kernel = stride = size. */
  | { readonly kind: "maxpool"; readonly size: number }
  /** Global average pooling: [N, C, H, W] -> [N, C]. */
  | { readonly kind: "gap" }
  | { readonly kind: "dense"; readonly out: number; readonly bias: boolean }
  /** Row-wise x / max(|x|, 1e-12). */
  | { readonly kind: "l2norm" }
  /** Group normalisation over (C / groups, H, W) per sample; eps 1e-5 as PyTorch's GroupNorm. */
  | { readonly kind: "groupnorm"; readonly groups: number }
  /** x sigmoid(x). */
  | { readonly kind: "silu" }
  /** Nearest-neighbour upsampling by 2 on both sides. */
  | { readonly kind: "upsample" }
  /** Identity that keeps its input for the matching `concat` (skip stacks are last in, first out). */
  | { readonly kind: "push" }
  /** [x, the last pushed skip] along channels; `skip` is that skip's channel count. */
  | { readonly kind: "concat"; readonly skip: number }
  /**
   * The time embedding: fixed Fourier features of the model's time input t ([N]: sin and cos of
   * t times `features` / 2 log-spaced frequencies from 1 to 1000) through `body` (vectors).
   * Identity on the image; the `cond` blocks after it read the embedding.
   */
  | { readonly kind: "embed"; readonly features: number; readonly body: readonly Block[] }
  /** x + Dense(embedding) broadcast over H, W; `embed` is the embedding's width. */
  | { readonly kind: "cond"; readonly embed: number }
  /** body(x) + shortcut(x) (an empty shortcut is the identity). */
  | {
    readonly kind: "residual";
    readonly body: readonly Block[];
    readonly shortcut: readonly Block[];
  };

/** Pixels of zero padding on each side of a conv block's input. */
export function convPad(block: Block & { kind: "conv" }): number {
  return block.padding === "valid" ? 0 : (block.kernel - 1) / 2;
}

export const BN_EPS = 1e-5;
export const GN_EPS = 1e-5;

/** The embed block's frequencies: features / 2 of them, log-spaced from 1 to 1000. */
export function fourierFrequencies(features: number): Float32Array {
  const half = features / 2;
  return Float32Array.from(
    { length: half },
    (_, k) => Math.exp((k * Math.log(1000)) / Math.max(1, half - 1)),
  );
}
export const BN_MOMENTUM = 0.1;

/** Activation shape without the batch axis: [C, H, W] for images, [F] for vectors. */
export type ActShape = readonly number[];

export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
  /** weight: fan-in uniform; bias: fan-in uniform; one / zero: BN scale and shift; running stats. */
  readonly init: "weight" | "bias" | "one" | "zero";
  readonly fanIn: number;
  /** Batch-norm running statistics are state, not trained. */
  readonly trainable: boolean;
}

const conv = (out: number, kernel = 3, stride = 1): Block => ({
  kind: "conv",
  out,
  kernel,
  stride,
  bias: false,
});
const bn: Block = { kind: "batchnorm" };
const relu: Block = { kind: "relu" };

/**
 * The 28x28x1 encoder of the PyTorch peer: conv 32-64-128 with BN and ReLU, pooling, 128-d;
 * `widths` narrows it (a classifier on 2 cores).
 */
export function smallCnn(widths: readonly [number, number, number] = [32, 64, 128]): Block[] {
  return [
    conv(widths[0]),
    bn,
    relu,
    { kind: "maxpool", size: 2 },
    conv(widths[1]),
    bn,
    relu,
    { kind: "maxpool", size: 2 },
    conv(widths[2]),
    bn,
    relu,
    { kind: "gap" },
  ];
}

function basicBlock(cin: number, cout: number, stride: number): Block[] {
  const shortcut = stride !== 1 || cin !== cout ? [conv(cout, 1, stride), bn] : [];
  return [
    { kind: "residual", body: [conv(cout, 3, stride), bn, relu, conv(cout), bn], shortcut },
    relu,
  ];
}

/** CIFAR ResNet-18: 3x3 stride-1 stem, no max-pool, stages 64-128-256-512, 512-d features. */
export function resnet18Cifar(): Block[] {
  const blocks: Block[] = [conv(64), bn, relu];
  let cin = 64;
  for (const [cout, stride] of [[64, 1], [128, 2], [256, 2], [512, 2]]) {
    blocks.push(...basicBlock(cin, cout, stride), ...basicBlock(cout, cout, 1));
    cin = cout;
  }
  blocks.push({ kind: "gap" });
  return blocks;
}

/** SimCLR / MoCo projection head: dense, ReLU, dense (bias on both, as torch.nn.Linear). */
export function projectionHead(hidden: number, out: number): Block[] {
  return [{ kind: "dense", out: hidden, bias: true }, relu, { kind: "dense", out, bias: true }];
}

/**
 * SimSiam's prediction head, a bottleneck MLP: dense (no bias) to `hidden` (dim / 4 in SimSiam),
 * batch norm, ReLU, dense back to `out`.
 */
export function predictionHead(hidden: number, out: number): Block[] {
  return [{ kind: "dense", out: hidden, bias: false }, bn, relu, {
    kind: "dense",
    out,
    bias: true,
  }];
}

export interface UnetPreset {
  /** Channel widths of the three levels (full, half and quarter resolution). */
  readonly widths: readonly [number, number, number];
  /** Width of the time embedding. */
  readonly embed: number;
  /** Fourier features of t (sin and cos). */
  readonly features: number;
}

export const UNET_PRESETS: Readonly<Record<string, UnetPreset>> = {
  tiny: { widths: [16, 32, 32], embed: 64, features: 32 },
  small: { widths: [32, 64, 64], embed: 128, features: 64 },
};

const GN_GROUPS = 8;

/**
 * GroupNorm-SiLU-Conv3x3, + Dense(time embedding), GroupNorm-SiLU-Conv3x3 (zero-initialised), plus
 * the input (through a 1x1 conv when the width changes).
 */
function timeResBlock(cin: number, cout: number, embed: number): Block {
  const norm = (c: number): Block => ({ kind: "groupnorm", groups: Math.min(GN_GROUPS, c) });
  const silu: Block = { kind: "silu" };
  const conv3 = (zero = false): Block => ({
    kind: "conv",
    out: cout,
    kernel: 3,
    stride: 1,
    bias: true,
    zero,
  });
  return {
    kind: "residual",
    body: [norm(cin), silu, conv3(), { kind: "cond", embed }, norm(cout), silu, conv3(true)],
    shortcut: cin === cout ? [] : [{ kind: "conv", out: cout, kernel: 1, stride: 1, bias: true }],
  };
}

/**
 * The velocity U-Net for [C, H, W] images with H and W divisible by 4: a stem conv, per level one
 * time-conditioned residual block (two at the bottom), stride-2 convs down, nearest upsampling
 * up, and concatenated skips at every level including the full-resolution one (they let the
 * network copy training images, which is what the memorization study measures). No attention.
 */
export function velocityUnet(channels: number, preset: UnetPreset): Block[] {
  const [w1, w2, w3] = preset.widths;
  const { embed } = preset;
  const down = (out: number): Block => ({ kind: "conv", out, kernel: 3, stride: 2, bias: true });
  return [
    {
      kind: "embed",
      features: preset.features,
      body: [{ kind: "dense", out: embed, bias: true }, { kind: "silu" }, {
        kind: "dense",
        out: embed,
        bias: true,
      }],
    },
    { kind: "conv", out: w1, kernel: 3, stride: 1, bias: true },
    timeResBlock(w1, w1, embed),
    { kind: "push" },
    down(w2),
    timeResBlock(w2, w2, embed),
    { kind: "push" },
    down(w3),
    timeResBlock(w3, w3, embed),
    timeResBlock(w3, w3, embed),
    { kind: "upsample" },
    { kind: "concat", skip: w2 },
    timeResBlock(w3 + w2, w2, embed),
    { kind: "upsample" },
    { kind: "concat", skip: w1 },
    timeResBlock(w2 + w1, w1, embed),
    { kind: "groupnorm", groups: Math.min(GN_GROUPS, w1) },
    { kind: "silu" },
    { kind: "conv", out: channels, kernel: 3, stride: 1, bias: true },
  ];
}

/** Walks the blocks, calling `visit` with each block's path-derived name and input shape. */
export function walk(
  blocks: readonly Block[],
  input: ActShape,
  visit: (block: Block, name: string, shape: ActShape) => void,
  prefix = "",
  skips: ActShape[] = [],
): ActShape {
  let shape = input;
  blocks.forEach((block, i) => {
    const name = `${prefix}${i}`;
    visit(block, name, shape);
    switch (block.kind) {
      case "residual": {
        const out = walk(block.body, shape, visit, `${name}.body.`);
        const short = walk(block.shortcut, shape, visit, `${name}.shortcut.`);
        if (out.join() !== short.join()) {
          throw new Error(`residual ${name}: body [${out}] vs shortcut [${short}]`);
        }
        shape = out;
        break;
      }
      case "embed":
        walk(block.body, [block.features], visit, `${name}.body.`);
        break;
      case "push":
        skips.push(shape);
        break;
      case "concat": {
        const skip = skips.pop();
        if (!skip || skip[0] !== block.skip || skip[1] !== shape[1] || skip[2] !== shape[2]) {
          throw new Error(`concat ${name}: skip [${skip}] does not fit [${shape}]`);
        }
        shape = outputShape(block, shape);
        break;
      }
      default:
        shape = outputShape(block, shape);
    }
  });
  return shape;
}

export function outputShape(block: Block, shape: ActShape): ActShape {
  switch (block.kind) {
    case "conv": {
      const [, h, w] = shape;
      const pad = convPad(block);
      const size = (n: number) => Math.floor((n + 2 * pad - block.kernel) / block.stride) + 1;
      return [block.out, size(h), size(w)];
    }
    case "maxpool":
      return [shape[0], Math.floor(shape[1] / block.size), Math.floor(shape[2] / block.size)];
    case "gap":
      return [shape[0]];
    case "dense":
      return [block.out];
    case "upsample":
      return [shape[0], 2 * shape[1], 2 * shape[2]];
    case "concat":
      return [shape[0] + block.skip, shape[1], shape[2]];
    case "residual":
      throw new Error("outputShape: walk() handles residual blocks");
    default:
      return shape;
  }
}

/** Every parameter and state tensor of a model, in a fixed order. */
export function paramSpecs(blocks: readonly Block[], input: ActShape): ParamSpec[] {
  const specs: ParamSpec[] = [];
  walk(blocks, input, (block, name, shape) => {
    if (block.kind === "conv" || block.kind === "dense" || block.kind === "cond") {
      // Conv weights are [out, in, kh, kw] (ONNX), dense weights [in, out] (x W); a cond block is
      // a dense layer from the embedding to the channels.
      const conv = block.kind === "conv";
      const [fanIn, out] = conv
        ? [shape[0] * block.kernel * block.kernel, block.out]
        : block.kind === "cond"
        ? [block.embed, shape[0]]
        : [shape[0], block.out];
      const weight = conv ? [out, shape[0], block.kernel, block.kernel] : [fanIn, out];
      const zero = conv && block.zero;
      specs.push({
        name: `${name}.weight`,
        shape: weight,
        init: zero ? "zero" : "weight",
        fanIn,
        trainable: true,
      });
      if (block.kind === "cond" || block.bias) {
        specs.push({
          name: `${name}.bias`,
          shape: [out],
          init: zero ? "zero" : "bias",
          fanIn,
          trainable: true,
        });
      }
    } else if (block.kind === "groupnorm" || block.kind === "batchnorm") {
      const c = [shape[0]];
      specs.push({ name: `${name}.scale`, shape: c, init: "one", fanIn: 0, trainable: true });
      specs.push({ name: `${name}.shift`, shape: c, init: "zero", fanIn: 0, trainable: true });
      if (block.kind === "batchnorm") {
        specs.push({ name: `${name}.mean`, shape: c, init: "zero", fanIn: 0, trainable: false });
        specs.push({ name: `${name}.var`, shape: c, init: "one", fanIn: 0, trainable: false });
      }
    }
  });
  return specs;
}
