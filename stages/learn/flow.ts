// The trained flow: a velocity U-Net fitted by the stochastic-interpolant regression on the
// compiled training graphs. With a finite training set the exact minimiser is the closed form b*
// (which only reproduces training samples); a network reaches it only up to an estimation error
// delta(t, x), and Lin, Li and Yu's Theorem 3 says that error decides what the flow generates.
// So besides the losses this learner measures delta(t) = E|b_theta(t, x) - b*(t, x)|^2 / d per time
// bin on fixed (t, x) pairs, against the exact b* over the whole training set.
//
// Per step, for images x1 of the training set, base noise x0 ~ N(0, I), t ~ U(0, T_MAX) and, with
// a latent noise, z ~ N(0, I): x_t = alpha x0 + beta x1 + gamma z, and the target is
//   velocity  alpha' x0 + beta' x1 + gamma' z
//   denoiser  x1
//   noise     x0 (no latent noise)
//   efm       b*(t, x_t) over the minibatch plus M other training images (Bertrand et al.'s
//             empirical flow matching; M >= N is the exact b*).

import { Rng } from "../../core/rng.ts";
import { exactDenoise, velocity as closedFormVelocity } from "../generate/interpolant/field.ts";
import type { Points } from "../generate/interpolant/field.ts";
import { denoiserFrom } from "../generate/interpolant/prediction.ts";
import { interpolant as makeInterpolant } from "../generate/interpolant/schedule.ts";
import type {
  Coefficients,
  Interpolant,
  InterpolantOptions,
} from "../generate/interpolant/schedule.ts";
import * as tf from "@tensorflow/tfjs";
import { createSession, ort } from "../../core/onnx.ts";
import type { Block } from "./blocks/model.ts";
import { paramSpecs, UNET_PRESETS, velocityUnet } from "./blocks/model.ts";
import { timedForwardModel } from "./graph/forward.ts";
import { forwardTimed } from "./blocks/tfjs.ts";
import { adamCorrections, cosineWithWarmup, emaUpdate } from "./graph/schedules.ts";
import { trainStep } from "./graph/train_step.ts";
import { Trainer } from "./graph/trainer.ts";

export const FLOW_TARGETS = ["velocity", "denoiser", "noise", "efm"] as const;
export type FlowTarget = (typeof FLOW_TARGETS)[number];

/** The data scale the network works in: sia's [0, 1] mapped onto [-1, 1]. */
export const FLOW_RANGE: readonly [number, number] = [-1, 1];

/** Training times stay below 1, where alpha = 0 makes denoiser and noise predictions singular. */
export const T_MAX = 1 - 1e-3;

const ADAM = { kind: "adam", beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 } as const;

export interface FlowOptions {
  /** A velocity U-Net preset (tiny, small). */
  readonly preset: string;
  readonly batch: number;
  readonly lr: number;
  readonly warmup: number;
  /** Steps the cosine learning-rate schedule spans. */
  readonly steps: number;
  /** Parameter EMA decay (0 = off); exports and evaluations use the EMA weights when on. */
  readonly ema: number;
  /** Global gradient-norm clipping (0 = off). */
  readonly clip: number;
  readonly target: FlowTarget;
  readonly interpolant: InterpolantOptions;
  /** efm: training images besides the minibatch in the closed-form target. */
  readonly efmExtra: number;
  readonly seed: number;
  readonly threads?: number;
}

/** What the network's output is, in the model contract's words (efm regresses a velocity). */
export function predictionOf(target: FlowTarget): "velocity" | "denoiser" | "noise" {
  return target === "efm" ? "velocity" : target;
}

/** Sia's [0, 1] images into the network's range. */
export function toFlowRange(images: Float32Array): Float32Array {
  const [lo, hi] = FLOW_RANGE;
  return images.map((v) => lo + (hi - lo) * v);
}

/**
 * The velocity a prediction stands for at x (Gaussian base): a denoiser or noise prediction
 * becomes the denoiser m (interpolant/prediction.ts), then b = beta' m + (sigma sigma' / sigma^2)
 * (x - beta m) as the closed form has it.
 */
export function velocityFromPrediction(
  prediction: "velocity" | "denoiser" | "noise",
  c: Coefficients,
  x: Float64Array,
  p: ArrayLike<number>,
  out: Float64Array,
): Float64Array {
  if (prediction === "velocity") {
    for (let j = 0; j < out.length; j++) out[j] = p[j];
    return out;
  }
  const m = denoiserFrom(prediction, c, x, p, new Float64Array(out.length));
  const nearest2 = new Float64Array(0);
  return closedFormVelocity(c, false, x, { my: m, ma: null, nearest2 }, out);
}

/** flow.json: what a velocity model must declare to be loaded as a generator (README). */
export interface FlowContract {
  readonly inputs: { readonly x: string; readonly t: string };
  readonly output: string;
  readonly layout: "nchw" | "nhwc";
  readonly prediction: "velocity" | "denoiser" | "noise" | "score";
  readonly schedule: string;
  readonly range: readonly number[];
  readonly time: { readonly dataAt: 0 | 1; readonly scale: number };
  readonly shape: readonly number[];
}

/** One batch of regression pairs: x_t (NHWC), t and the target, from seeded draws. */
interface Pairs {
  readonly x: Float32Array;
  readonly t: Float32Array;
  readonly target: Float32Array;
}

export class FlowLearner {
  readonly blocks: Block[];
  /** One image, [H, W, C]. */
  readonly input: readonly [number, number, number];
  readonly trainer: Trainer;
  readonly interpolant: Interpolant;
  /** EMA of the trainable parameters (empty when ema = 0). */
  readonly ema = new Map<string, Float32Array>();
  readonly #train: Points;
  #forward: ort.InferenceSession | null = null;

  private constructor(
    readonly options: FlowOptions,
    train: Points,
    input: readonly [number, number, number],
    blocks: Block[],
    trainer: Trainer,
  ) {
    this.#train = train;
    this.input = input;
    this.blocks = blocks;
    this.trainer = trainer;
    this.interpolant = makeInterpolant(options.interpolant);
    if (options.ema > 0) {
      for (const p of trainer.graph.params.filter((p) => p.trainable)) {
        this.ema.set(p.name, trainer.value(p.name).slice());
      }
    }
  }

  /** `images`: the training set, NHWC on [0, 1], [n, H, W, C] with H and W divisible by 4. */
  static async create(
    images: Float32Array,
    input: readonly [number, number, number],
    options: FlowOptions,
  ): Promise<FlowLearner> {
    const [h, w, c] = input;
    if (h % 4 !== 0 || w % 4 !== 0) {
      throw new Error(`flow: image sides must be divisible by 4, got ${h}x${w}`);
    }
    const preset = UNET_PRESETS[options.preset];
    if (!preset) throw new Error(`flow: unknown preset ${options.preset}`);
    if (options.target === "noise" && options.interpolant.gamma !== "none") {
      throw new Error("flow: target=noise needs gamma=none (x0 alone does not give x1)");
    }
    const d = h * w * c;
    const train: Points = { y: toFlowRange(images), n: images.length / d, d };
    const blocks = velocityUnet(c, preset);
    const graph = trainStep({
      blocks,
      input,
      batch: options.batch,
      loss: { kind: "mse" },
      optimizer: ADAM,
      clip: options.clip,
    });
    const trainer = await Trainer.create(
      graph,
      options.seed,
      [options.batch, h, w, c],
      options.threads,
    );
    return new FlowLearner(options, train, input, blocks, trainer);
  }

  get d(): number {
    return this.#train.d;
  }

  /** The training images in the flow range, NHWC. */
  trainImages(): Float32Array {
    return this.#train.y;
  }

  /** Seeded regression pairs for x1 = the given training rows (or images of another set). */
  pairs(x1: Float32Array, rng: Rng, times: Float32Array, withTarget = true): Pairs {
    const d = this.d;
    const b = times.length;
    const x = new Float32Array(b * d);
    const target = new Float32Array(b * d);
    const x0 = new Float32Array(d);
    const latent = this.options.interpolant.gamma !== "none";
    for (let r = 0; r < b; r++) {
      const c = this.interpolant.at(times[r]);
      const gammaDot = latent ? c.gammaGammaDot / c.gamma : 0;
      for (let j = 0; j < d; j++) {
        x0[j] = rng.normal();
        const y = x1[r * d + j];
        const z = latent ? rng.normal() : 0;
        const i = r * d + j;
        x[i] = c.alpha * x0[j] + c.beta * y + c.gamma * z;
        if (!withTarget) continue;
        target[i] = this.options.target === "denoiser"
          ? y
          : this.options.target === "noise"
          ? x0[j]
          : c.alphaDot * x0[j] + c.betaDot * y + gammaDot * z;
      }
    }
    return { x, t: times, target };
  }

  /** The draws of step s: a pure function of (seed, s), so a resumed run repeats them. */
  stepPairs(s: number): Pairs {
    const { batch, seed, target, efmExtra } = this.options;
    const { n, d, y } = this.#train;
    const rng = new Rng(seed, "flow-step", s);
    const rows = Int32Array.from({ length: batch }, () => rng.int(n));
    const x1 = new Float32Array(batch * d);
    rows.forEach((i, r) => x1.set(y.subarray(i * d, (i + 1) * d), r * d));
    const times = Float32Array.from({ length: batch }, () => rng.uniform() * T_MAX);
    const pairs = this.pairs(x1, rng, times, target !== "efm");
    if (target === "efm") {
      const set = efmExtra >= n ? this.#train : (() => {
        const extra = Int32Array.from({ length: efmExtra }, () => rng.int(n));
        const points = new Float32Array((batch + efmExtra) * d);
        points.set(x1);
        extra.forEach((i, k) => points.set(y.subarray(i * d, (i + 1) * d), (batch + k) * d));
        return { y: points, n: batch + efmExtra, d };
      })();
      this.closedForm(set, pairs.x, times, pairs.target);
    }
    return pairs;
  }

  /** b*(t_r, x_r) of a finite set, row by row, into `out`. */
  closedForm(set: Points, x: Float32Array, times: Float32Array, out: Float32Array): void {
    const d = set.d;
    const b = new Float64Array(d);
    for (let r = 0; r < times.length; r++) {
      const c = this.interpolant.at(times[r]);
      const xr = Float64Array.from(x.subarray(r * d, (r + 1) * d));
      const { m, nearest2 } = exactDenoise(set, xr, 1, c.beta, c.sigma2);
      closedFormVelocity(c, false, xr, { my: m, ma: null, nearest2 }, b);
      out.set(b, r * d);
    }
  }

  /** b* of the whole training set at (t, x). */
  exactVelocity(x: Float32Array, times: Float32Array): Float32Array {
    const out = new Float32Array(x.length);
    this.closedForm(this.#train, x, times, out);
    return out;
  }

  /** The learning rate of the last step. */
  lr = 0;

  /** One Adam step; returns the regression loss. */
  async step(): Promise<number> {
    const s = this.trainer.steps;
    const { x, t, target } = this.stepPairs(s);
    const { lr, warmup, steps, ema } = this.options;
    this.lr = cosineWithWarmup(s, { base: lr, warmup, total: steps });
    const loss = await this.trainer.step(x, {
      lr: this.lr,
      ...adamCorrections(s + 1, ADAM.beta1, ADAM.beta2),
    }, { t, target });
    if (!Number.isFinite(loss)) throw new Error(`flow: the loss diverged at step ${s + 1}`);
    for (const [name, shadow] of this.ema) emaUpdate(shadow, this.trainer.value(name), ema);
    return loss;
  }

  /** The weights generation uses: the EMA when on, else the current parameters (copies). */
  weights(): Map<string, Float32Array> {
    const specs = paramSpecs(this.blocks, this.chw);
    return new Map(
      specs.map((s) => [s.name, (this.ema.get(s.name) ?? this.trainer.value(s.name)).slice()]),
    );
  }

  get chw(): [number, number, number] {
    const [h, w, c] = this.input;
    return [c, h, w];
  }

  /** The network's output at (t, x) for NHWC x in the flow range, with `weights`. */
  async predict(
    x: Float32Array,
    t: Float32Array,
    weights = this.weights(),
  ): Promise<Float32Array> {
    this.#forward ??= await createSession(
      timedForwardModel(this.blocks, this.chw, "inputs"),
      this.options.threads,
    );
    const [c, h, w] = this.chw;
    const n = t.length;
    const feeds: Record<string, ort.Tensor> = {
      x: new ort.Tensor("float32", nhwcToNchw(x, n, h, w, c), [n, c, h, w]),
      t: new ort.Tensor("float32", t, [n]),
    };
    for (const s of paramSpecs(this.blocks, this.chw)) {
      feeds[s.name] = new ort.Tensor("float32", weights.get(s.name)!, [...s.shape]);
    }
    const out = await this.#forward.run(feeds);
    return nchwToNhwc(out.out.data as Float32Array, n, h, w, c);
  }

  /** The velocity the network stands for at (t, x), whatever it predicts. */
  async velocityAt(x: Float32Array, t: Float32Array): Promise<Float32Array> {
    const p = await this.predict(x, t);
    const d = this.d;
    const out = new Float32Array(p.length);
    const row = new Float64Array(d);
    const prediction = predictionOf(this.options.target);
    for (let r = 0; r < t.length; r++) {
      const c = this.interpolant.at(t[r]);
      const at = r * d;
      const xr = Float64Array.from(x.subarray(at, at + d));
      velocityFromPrediction(prediction, c, xr, p.subarray(at, at + d), row);
      out.set(row, at);
    }
    return out;
  }

  /**
   * flow.onnx (the EMA weights as constants) and its model contract, after checking the exported
   * graph against the tfjs oracle on seeded random inputs: a relative error above `tolerance`
   * throws instead of exporting.
   */
  async exportModel(
    tolerance = 1e-5,
  ): Promise<{ onnx: Uint8Array; contract: FlowContract; error: number }> {
    const weights = this.weights();
    const onnx = timedForwardModel(this.blocks, this.chw, weights);
    const [c, h, w] = this.chw;
    const n = 4;
    const rng = new Rng(this.options.seed, "flow-export-check");
    const x = Float32Array.from({ length: n * c * h * w }, () => rng.normal());
    const t = Float32Array.from({ length: n }, (_, i) => (i + 0.5) / n);
    const session = await createSession(onnx, this.options.threads);
    const got = (await session.run({
      x: new ort.Tensor("float32", x, [n, c, h, w]),
      t: new ort.Tensor("float32", t, [n]),
    })).out.data as Float32Array;
    await session.release();
    const want = tf.tidy(() => {
      const params = new Map(
        paramSpecs(this.blocks, this.chw).map((s) => [
          s.name,
          tf.tensor(weights.get(s.name)!, [...s.shape]),
        ]),
      );
      const xNhwc = tf.tensor(nchwToNhwc(x, n, h, w, c), [n, h, w, c]);
      const y = forwardTimed(this.blocks, params, xNhwc, tf.tensor(t, [n]));
      return nhwcToNchw(y.dataSync() as Float32Array, n, h, w, c);
    });
    let scale = 0;
    let diff = 0;
    for (let i = 0; i < want.length; i++) {
      scale = Math.max(scale, Math.abs(want[i]));
      diff = Math.max(diff, Math.abs(got[i] - want[i]));
    }
    const error = diff / Math.max(scale, 1e-12);
    if (!(error <= tolerance)) {
      throw new Error(
        `flow export: the ONNX graph differs from the tfjs oracle by ${
          error.toExponential(2)
        } (relative; limit ${tolerance})`,
      );
    }
    const contract: FlowContract = {
      inputs: { x: "x", t: "t" },
      output: "out",
      layout: "nchw",
      prediction: predictionOf(this.options.target),
      schedule: this.options.interpolant.schedule,
      range: [...FLOW_RANGE],
      time: { dataAt: 1, scale: 1 },
      shape: this.chw,
    };
    return { onnx, contract, error };
  }

  async release(): Promise<void> {
    await this.#forward?.release();
    await this.trainer.release();
  }
}

export function nhwcToNchw(x: Float32Array, n: number, h: number, w: number, c: number) {
  if (c === 1) return x;
  const out = new Float32Array(x.length);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < h * w; p++) {
      for (let k = 0; k < c; k++) out[(i * c + k) * h * w + p] = x[(i * h * w + p) * c + k];
    }
  }
  return out;
}

export function nchwToNhwc(x: Float32Array, n: number, h: number, w: number, c: number) {
  if (c === 1) return x;
  const out = new Float32Array(x.length);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < h * w; p++) {
      for (let k = 0; k < c; k++) out[(i * h * w + p) * c + k] = x[(i * c + k) * h * w + p];
    }
  }
  return out;
}
