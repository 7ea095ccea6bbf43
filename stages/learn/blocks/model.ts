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

/** Walks the blocks, calling `visit` with each block's path-derived name and input shape. */
export function walk(
  blocks: readonly Block[],
  input: ActShape,
  visit: (block: Block, name: string, shape: ActShape) => void,
  prefix = "",
): ActShape {
  let shape = input;
  blocks.forEach((block, i) => {
    const name = `${prefix}${i}`;
    visit(block, name, shape);
    shape = block.kind === "residual"
      ? (() => {
        const out = walk(block.body, shape, visit, `${name}.body.`);
        const short = walk(block.shortcut, shape, visit, `${name}.shortcut.`);
        if (out.join() !== short.join()) {
          throw new Error(`residual ${name}: body [${out}] vs shortcut [${short}]`);
        }
        return out;
      })()
      : outputShape(block, shape);
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
    if (block.kind === "conv" || block.kind === "dense") {
      // Conv weights are [out, in, kh, kw] (ONNX), dense weights [in, out] (x W).
      const conv = block.kind === "conv";
      const fanIn = conv ? shape[0] * block.kernel * block.kernel : shape[0];
      const weight = conv
        ? [block.out, shape[0], block.kernel, block.kernel]
        : [shape[0], block.out];
      specs.push({ name: `${name}.weight`, shape: weight, init: "weight", fanIn, trainable: true });
      if (block.bias) {
        specs.push({
          name: `${name}.bias`,
          shape: [block.out],
          init: "bias",
          fanIn,
          trainable: true,
        });
      }
    } else if (block.kind === "batchnorm") {
      const c = [shape[0]];
      specs.push({ name: `${name}.scale`, shape: c, init: "one", fanIn: 0, trainable: true });
      specs.push({ name: `${name}.shift`, shape: c, init: "zero", fanIn: 0, trainable: true });
      specs.push({ name: `${name}.mean`, shape: c, init: "zero", fanIn: 0, trainable: false });
      specs.push({ name: `${name}.var`, shape: c, init: "one", fanIn: 0, trainable: false });
    }
  });
  return specs;
}
