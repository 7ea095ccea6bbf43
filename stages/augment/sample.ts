// Draws a view's parameters from its own random stream, with torchvision 0.14's laws, in the order
// the recipe applies them (crop, flip, jitter, grayscale, blur):
//   crop     RandomResizedCrop.get_params: up to 10 tries of area ~ U(scaleMin, scaleMax) * H W and
//            log aspect ratio ~ U(log ratioMin, log ratioMax), w = round(sqrt(area r)),
//            h = round(sqrt(area / r)) (Python's round: half to even), accepted when
//            0 < w <= W and 0 < h <= H, then top ~ U{0..H-h}, left ~ U{0..W-w}; if all 10 fail,
//            the centre crop of the whole image clamped to the ratio bounds (the fallback)
//   flip     u < flipP
//   jitter   RandomApply(ColorJitter, jitterP): u < jitterP, then a random order of the four ops
//            (randperm(4)), then the factors of the enabled ones in the order b, c, s, h: b, c, s
//            ~ U(max(0, 1 - x), 1 + x), hue ~ U(-x, x); an op with strength 0 is off
//   gray     u < grayP
//   blur     u < blurP, then sigma ~ U(blurSigmaMin, blurSigmaMax)
// (Same laws as torchvision, not the same numbers: the draws come from core/rng.ts, keyed by
// seed, image and view, never from a global generator.)

import type { Rng } from "../../core/rng.ts";
import { BRIGHTNESS, CONTRAST, SATURATION } from "./render.ts";
import type { ViewPlan } from "./render.ts";

/** The numbers of a recipe that the sampler reads. */
export interface SamplingLaw {
  readonly scaleMin: number;
  readonly scaleMax: number;
  readonly ratioMin: number;
  readonly ratioMax: number;
  readonly flipP: number;
  readonly brightness: number;
  readonly contrast: number;
  readonly saturation: number;
  readonly hue: number;
  readonly jitterP: number;
  readonly grayP: number;
  readonly blurP: number;
  readonly blurSigmaMin: number;
  readonly blurSigmaMax: number;
}

/** A crop draw: the box, and the raw accepted draw behind it (for tests of the law). */
export interface CropDraw {
  top: number;
  left: number;
  height: number;
  width: number;
  /** True when all 10 tries failed and the box is the centre-crop fallback. */
  fallback: boolean;
  /** The accepted try's area fraction and log aspect ratio (NaN on fallback). */
  scale: number;
  logRatio: number;
}

export function emptyCrop(): CropDraw {
  return { top: 0, left: 0, height: 0, width: 0, fallback: false, scale: NaN, logRatio: NaN };
}

/** Python's round(): nearest integer, halves to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** RandomResizedCrop.get_params for an H x W image, into `out`. */
export function sampleCrop(
  rng: Rng,
  height: number,
  width: number,
  scaleMin: number,
  scaleMax: number,
  ratioMin: number,
  ratioMax: number,
  out: CropDraw,
): CropDraw {
  const area = height * width;
  const logMin = Math.log(ratioMin);
  const logMax = Math.log(ratioMax);
  for (let attempt = 0; attempt < 10; attempt++) {
    const scale = scaleMin + (scaleMax - scaleMin) * rng.uniform();
    const logRatio = logMin + (logMax - logMin) * rng.uniform();
    const target = area * scale;
    const ratio = Math.exp(logRatio);
    const w = roundHalfEven(Math.sqrt(target * ratio));
    const h = roundHalfEven(Math.sqrt(target / ratio));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      out.top = rng.int(height - h + 1);
      out.left = rng.int(width - w + 1);
      out.height = h;
      out.width = w;
      out.fallback = false;
      out.scale = scale;
      out.logRatio = logRatio;
      return out;
    }
  }
  // The fallback: the whole image, cut to the nearest allowed ratio, centred.
  const inRatio = width / height;
  let w = width, h = height;
  if (inRatio < ratioMin) h = roundHalfEven(w / ratioMin);
  else if (inRatio > ratioMax) w = roundHalfEven(h * ratioMax);
  out.top = Math.floor((height - h) / 2);
  out.left = Math.floor((width - w) / 2);
  out.height = h;
  out.width = w;
  out.fallback = true;
  out.scale = NaN;
  out.logRatio = NaN;
  return out;
}

/** Draws every parameter of one view into `plan` (crop into `crop` as well). */
export function sampleView(
  law: SamplingLaw,
  rng: Rng,
  height: number,
  width: number,
  plan: ViewPlan,
  crop: CropDraw,
): void {
  sampleCrop(rng, height, width, law.scaleMin, law.scaleMax, law.ratioMin, law.ratioMax, crop);
  plan.top = crop.top;
  plan.left = crop.left;
  plan.height = crop.height;
  plan.width = crop.width;
  plan.flip = rng.uniform() < law.flipP;
  plan.jitterCount = 0;
  if (rng.uniform() < law.jitterP) {
    // randperm(4) into the plan's op slots, then the factors in b, c, s, h order.
    const order = plan.jitterOps;
    for (let k = 0; k < 4; k++) order[k] = k;
    for (let k = 3; k > 0; k--) {
      const j = rng.int(k + 1);
      const t = order[k];
      order[k] = order[j];
      order[j] = t;
    }
    const b = law.brightness > 0
      ? uniform(rng, Math.max(0, 1 - law.brightness), 1 + law.brightness)
      : NaN;
    const c = law.contrast > 0
      ? uniform(rng, Math.max(0, 1 - law.contrast), 1 + law.contrast)
      : NaN;
    const s = law.saturation > 0
      ? uniform(rng, Math.max(0, 1 - law.saturation), 1 + law.saturation)
      : NaN;
    const h = law.hue > 0 ? uniform(rng, -law.hue, law.hue) : NaN;
    let count = 0;
    for (let k = 0; k < 4; k++) {
      const op = order[k];
      const f = op === BRIGHTNESS ? b : op === CONTRAST ? c : op === SATURATION ? s : h;
      if (Number.isNaN(f)) continue;
      order[count] = op;
      plan.jitterFactors[count] = f;
      count++;
    }
    plan.jitterCount = count;
  }
  plan.gray = rng.uniform() < law.grayP;
  plan.blurSigma = rng.uniform() < law.blurP ? uniform(rng, law.blurSigmaMin, law.blurSigmaMax) : 0;
}

function uniform(rng: Rng, lo: number, hi: number): number {
  return lo + (hi - lo) * rng.uniform();
}
