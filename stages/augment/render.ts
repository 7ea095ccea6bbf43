// Renders one augmented view of one NHWC image from drawn parameters (a ViewPlan), with
// torchvision 0.14's tensor semantics, op by op:
//   crop + resize  F.resized_crop: torch interpolate bilinear, align_corners=False, no antialias
//   flip           F.hflip
//   colour jitter  F.adjust_brightness / adjust_contrast / adjust_saturation / adjust_hue in the
//                  order ColorJitter's randperm gave (functional_tensor: _blend clamps to [0, 1];
//                  hue goes through _rgb2hsv / _hsv2rgb); saturation and hue are identities on one
//                  channel, contrast blends towards the mean of the single channel
//   grayscale      F.rgb_to_grayscale(0.2989 r + 0.587 g + 0.114 b) copied to all 3 channels
//   blur           F.gaussian_blur: odd square kernel, reflect padding, normalised separable
//                  Gaussian (torch convolves with the outer product; separable is the same sum)
//   normalise      F.normalize: (x - mean[c]) / std[c]
// How: one resampling pass through per-view index/weight tables (torch's own float32 source
// coordinates, the flip folded into the column table), then one tight pass per jitter op in the
// drawn order, grayscale, and the blur (two separable passes, normalisation fused into the last)
// or a normalisation pass. A 32x32x3 view is 12 KB and stays in L1 across its passes; one
// monomorphic loop per op runs about twice as fast in V8 as a per-pixel interpreter of the op
// order (measured here: 16 against 35 us of CPU per view for the four jitter ops), and hue is
// written so the CPU has few branches to guess (see hue). All tables and scratch are allocated
// once per renderer (per input shape), none per view or pixel. Each op reads and writes the
// float32 view, as torch rounds after each op; arithmetic within an op is float64, so outputs are
// within ~1e-6 of torchvision's (tests/stages/augment/render_test.ts: within its fixtures'
// 3e-5 quantization).

/** Colour-jitter op codes, numbered as ColorJitter's fn_idx. */
export const BRIGHTNESS = 0;
export const CONTRAST = 1;
export const SATURATION = 2;
export const HUE = 3;
export const JITTER_NAMES = ["brightness", "contrast", "saturation", "hue"] as const;

/** Everything drawn for one view. Mutable and reused: the sampler fills it, the renderer reads. */
export interface ViewPlan {
  /** Crop box in input pixels: rows top..top+height-1, columns left..left+width-1. */
  top: number;
  left: number;
  height: number;
  width: number;
  /** Horizontal flip of the resized crop. */
  flip: boolean;
  /** Jitter ops to apply, in order, as codes above; only the first jitterCount are used. */
  readonly jitterOps: Int32Array;
  /** Factor of each op in jitterOps (brightness/contrast/saturation factor, hue shift). */
  readonly jitterFactors: Float64Array;
  jitterCount: number;
  /** Replace the pixels by their luma (RandomGrayscale). */
  gray: boolean;
  /** Gaussian blur sigma; 0 = no blur. */
  blurSigma: number;
}

export function emptyPlan(): ViewPlan {
  return {
    top: 0,
    left: 0,
    height: 0,
    width: 0,
    flip: false,
    jitterOps: new Int32Array(4),
    jitterFactors: new Float64Array(4),
    jitterCount: 0,
    gray: false,
    blurSigma: 0,
  };
}

/** What stays fixed for every view a renderer makes. */
export interface RenderShape {
  readonly inHeight: number;
  readonly inWidth: number;
  /** 1 (grayscale) or 3 (RGB), input and output. */
  readonly channels: number;
  readonly outHeight: number;
  readonly outWidth: number;
  /** Odd blur kernel side; must be <= 2 * min(outHeight, outWidth) - 1 (reflect padding). */
  readonly blurKernel: number;
  /** Per-channel mean and std of the normalisation (length = channels), or null for none. */
  readonly mean: readonly number[] | null;
  readonly std: readonly number[] | null;
}

const f32 = Math.fround;

/** torch's interpolate(bilinear, align_corners=False) taps along one axis, in float32 as torch
 * computes them: for output o, src = max(0, (in/out) (o + 0.5) - 0.5), i0 = floor(src),
 * i1 = i0 + (i0 < in - 1), weight of i1 = src - i0. `reverse` reads the output backwards (flip). */
function axisTaps(
  inSize: number,
  outSize: number,
  reverse: boolean,
  first: Int32Array,
  second: Int32Array,
  weight: Float64Array,
): void {
  const scale = f32(inSize / outSize);
  for (let o = 0; o < outSize; o++) {
    let src = f32(f32(scale * (o + 0.5)) - 0.5);
    if (src < 0) src = 0;
    let i0 = Math.floor(src);
    if (i0 > inSize - 1) i0 = inSize - 1;
    let lambda = f32(src - i0);
    if (lambda > 1) lambda = 1;
    const at = reverse ? outSize - 1 - o : o;
    first[at] = i0;
    second[at] = i0 < inSize - 1 ? i0 + 1 : i0;
    weight[at] = lambda;
  }
}

/** Reflect (no edge repeat) index, as torch.nn.functional.pad(mode="reflect"). */
function reflect(i: number, n: number): number {
  if (n === 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
  return i;
}

/** torchvision's _get_gaussian_kernel1d: linspace(-(k-1)/2, (k-1)/2, k), exp(-x^2 / 2 sigma^2),
 * normalised to sum 1 (float32, as torch builds it). */
export function gaussianKernel(size: number, sigma: number, out: Float64Array): void {
  const half = (size - 1) * 0.5;
  let total = 0;
  for (let t = 0; t < size; t++) {
    const x = f32(-half + t);
    const z = f32(x / sigma);
    const v = f32(Math.exp(f32(-0.5 * f32(z * z))));
    out[t] = v;
    total = f32(total + v);
  }
  for (let t = 0; t < size; t++) out[t] = f32(out[t] / total);
}

/** Odd blur kernel side for an image side: floor(0.1 side) made odd as SimCLR does
 * (2 floor(k / 2) + 1), at least 3: 3 for 28 and 32 px, 9 for 96, 23 for 224. */
export function autoBlurKernel(side: number): number {
  const k = Math.floor(0.1 * side);
  return Math.max(3, 2 * Math.floor(k / 2) + 1);
}

const GR = 0.2989;
const GG = 0.587;
const GB = 0.114;

/** Renders views for one input shape; holds every table and scratch buffer it needs. */
export class ViewRenderer {
  readonly shape: RenderShape;
  readonly #c: number;
  readonly #outPixels: number;
  readonly #rowA: Int32Array;
  readonly #rowB: Int32Array;
  readonly #wy: Float64Array;
  readonly #colA: Int32Array;
  readonly #colB: Int32Array;
  readonly #wx: Float64Array;
  readonly #kernel: Float64Array;
  /** Start of the reflect-padded source row of each vertical tap, per output row. */
  readonly #blurRow: Int32Array;
  /** The horizontally blurred view; one reflect-padded row; one row of sums. */
  readonly #blurScratch: Float32Array;
  readonly #padRow: Float64Array;
  readonly #sumRow: Float64Array;
  readonly #shift: Float64Array;
  readonly #scale: Float64Array;
  readonly #normalize: boolean;

  constructor(shape: RenderShape) {
    const { channels: c, outHeight: oh, outWidth: ow, blurKernel: k } = shape;
    if (c !== 1 && c !== 3) throw new Error(`augment: ${c} channels (expected 1 or 3)`);
    if (k < 1 || k % 2 === 0 || (k - 1) / 2 >= Math.min(oh, ow)) {
      throw new Error(`augment: blur kernel ${k} for a ${oh}x${ow} view (odd, half < side)`);
    }
    this.shape = shape;
    this.#c = c;
    this.#outPixels = oh * ow;
    this.#rowA = new Int32Array(oh);
    this.#rowB = new Int32Array(oh);
    this.#wy = new Float64Array(oh);
    this.#colA = new Int32Array(ow);
    this.#colB = new Int32Array(ow);
    this.#wx = new Float64Array(ow);
    this.#kernel = new Float64Array(k);
    const half = (k - 1) / 2;
    this.#blurRow = new Int32Array(oh * k);
    for (let y = 0; y < oh; y++) {
      for (let t = 0; t < k; t++) this.#blurRow[y * k + t] = reflect(y + t - half, oh) * ow * c;
    }
    this.#blurScratch = new Float32Array(oh * ow * c);
    this.#padRow = new Float64Array((ow + 2 * half) * c);
    this.#sumRow = new Float64Array(ow * c);
    this.#normalize = shape.mean !== null && shape.std !== null;
    this.#shift = new Float64Array(c);
    this.#scale = new Float64Array(c).fill(1);
    if (this.#normalize) {
      for (let j = 0; j < c; j++) {
        this.#shift[j] = shape.mean![j];
        this.#scale[j] = 1 / shape.std![j];
      }
    }
  }

  /** Writes the view of the image at src[srcOffset..] into dst[dstOffset..] (outHeight *
   * outWidth * channels values). The crop box must lie inside the input. */
  render(
    src: Float32Array,
    srcOffset: number,
    plan: ViewPlan,
    dst: Float32Array,
    dstOffset: number,
  ): void {
    const { inHeight: ih, inWidth: iw } = this.shape;
    if (
      plan.top < 0 || plan.left < 0 || plan.height < 1 || plan.width < 1 ||
      plan.top + plan.height > ih || plan.left + plan.width > iw
    ) {
      throw new Error(
        `augment: crop box (${plan.top}, ${plan.left}, ${plan.height}, ${plan.width}) ` +
          `outside a ${ih}x${iw} image`,
      );
    }
    this.#resample(src, srcOffset, plan, dst, dstOffset);
    const c = this.#c;
    const length = this.#outPixels * c;
    for (let k = 0; k < plan.jitterCount; k++) {
      const f = plan.jitterFactors[k];
      switch (plan.jitterOps[k]) {
        case BRIGHTNESS:
          brightness(dst, dstOffset, length, f);
          break;
        case CONTRAST:
          contrast(dst, dstOffset, length, c, f);
          break;
        case SATURATION:
          if (c === 3) saturation(dst, dstOffset, length, f);
          break;
        case HUE:
          if (c === 3) hue(dst, dstOffset, length, f);
          break;
      }
    }
    if (plan.gray && c === 3) grayscale(dst, dstOffset, length);
    if (plan.blurSigma > 0) this.#blur(dst, dstOffset, plan.blurSigma);
    else if (this.#normalize) normalize(dst, dstOffset, length, c, this.#shift, this.#scale);
  }

  #resample(src: Float32Array, so: number, plan: ViewPlan, dst: Float32Array, d0: number): void {
    const { inWidth: iw, outHeight: oh, outWidth: ow } = this.shape;
    const c = this.#c;
    const rowA = this.#rowA, rowB = this.#rowB, wy = this.#wy;
    const colA = this.#colA, colB = this.#colB, wx = this.#wx;
    axisTaps(plan.height, oh, false, rowA, rowB, wy);
    axisTaps(plan.width, ow, plan.flip, colA, colB, wx);
    const rowStride = iw * c;
    for (let y = 0; y < oh; y++) {
      rowA[y] = so + (plan.top + rowA[y]) * rowStride;
      rowB[y] = so + (plan.top + rowB[y]) * rowStride;
    }
    for (let x = 0; x < ow; x++) {
      colA[x] = (plan.left + colA[x]) * c;
      colB[x] = (plan.left + colB[x]) * c;
    }
    let q = d0;
    if (c === 3) {
      for (let y = 0; y < oh; y++) {
        const a = rowA[y], b = rowB[y];
        const v1 = wy[y], v0 = 1 - v1;
        for (let x = 0; x < ow; x++) {
          const u1 = wx[x], u0 = 1 - u1;
          const p00 = a + colA[x], p01 = a + colB[x], p10 = b + colA[x], p11 = b + colB[x];
          dst[q] = v0 * (u0 * src[p00] + u1 * src[p01]) + v1 * (u0 * src[p10] + u1 * src[p11]);
          dst[q + 1] = v0 * (u0 * src[p00 + 1] + u1 * src[p01 + 1]) +
            v1 * (u0 * src[p10 + 1] + u1 * src[p11 + 1]);
          dst[q + 2] = v0 * (u0 * src[p00 + 2] + u1 * src[p01 + 2]) +
            v1 * (u0 * src[p10 + 2] + u1 * src[p11 + 2]);
          q += 3;
        }
      }
    } else {
      for (let y = 0; y < oh; y++) {
        const a = rowA[y], b = rowB[y];
        const v1 = wy[y], v0 = 1 - v1;
        for (let x = 0; x < ow; x++) {
          const u1 = wx[x], u0 = 1 - u1;
          dst[q++] = v0 * (u0 * src[a + colA[x]] + u1 * src[a + colB[x]]) +
            v1 * (u0 * src[b + colA[x]] + u1 * src[b + colB[x]]);
        }
      }
    }
  }

  /** Separable Gaussian blur of the view at dst[d0..] in place (each row reflect-padded and
   * blurred into scratch, then the columns back), normalising on the way out when asked. */
  #blur(dst: Float32Array, d0: number, sigma: number): void {
    const { outHeight: oh, outWidth: ow, blurKernel: k } = this.shape;
    const c = this.#c;
    const half = (k - 1) / 2;
    const kernel = this.#kernel;
    gaussianKernel(k, sigma, kernel);
    const tmp = this.#blurScratch, pad = this.#padRow, sum = this.#sumRow;
    const rowStride = ow * c;
    for (let y = 0; y < oh; y++) {
      const base = d0 + y * rowStride;
      for (let i = 0; i < rowStride; i++) pad[half * c + i] = dst[base + i];
      for (let m = 1; m <= half; m++) {
        for (let j = 0; j < c; j++) {
          pad[(half - m) * c + j] = dst[base + m * c + j];
          pad[(half + ow - 1 + m) * c + j] = dst[base + (ow - 1 - m) * c + j];
        }
      }
      const w0 = kernel[0];
      for (let i = 0; i < rowStride; i++) sum[i] = w0 * pad[i];
      for (let t = 1; t < k; t++) {
        const w = kernel[t], shift = t * c;
        for (let i = 0; i < rowStride; i++) sum[i] += w * pad[i + shift];
      }
      const out = y * rowStride;
      for (let i = 0; i < rowStride; i++) tmp[out + i] = sum[i];
    }
    const rows = this.#blurRow, shift = this.#shift, scale = this.#scale;
    for (let y = 0; y < oh; y++) {
      const taps = y * k;
      const first = rows[taps], w0 = kernel[0];
      for (let i = 0; i < rowStride; i++) sum[i] = w0 * tmp[first + i];
      for (let t = 1; t < k; t++) {
        const from = rows[taps + t], w = kernel[t];
        for (let i = 0; i < rowStride; i++) sum[i] += w * tmp[from + i];
      }
      const out = d0 + y * rowStride;
      if (c === 3) {
        const m0 = shift[0], m1 = shift[1], m2 = shift[2];
        const s0 = scale[0], s1 = scale[1], s2 = scale[2];
        for (let i = 0; i < rowStride; i += 3) {
          dst[out + i] = (sum[i] - m0) * s0;
          dst[out + i + 1] = (sum[i + 1] - m1) * s1;
          dst[out + i + 2] = (sum[i + 2] - m2) * s2;
        }
      } else {
        const m0 = shift[0], s0 = scale[0];
        for (let i = 0; i < rowStride; i++) dst[out + i] = (sum[i] - m0) * s0;
      }
    }
  }
}

function clamp01(x: number): number {
  return x < 0 ? 0 : x > 1 ? 1 : x;
}

// The per-pixel ops, each one tight pass over a view in place (length values from off). A view is
// small (12 KB at 32x32x3) and stays in L1 across passes, and V8 compiles one monomorphic loop per
// op much better than a per-pixel interpreter of the op order: 16 against 35 us of CPU per
// 32x32x3 view for the four jitter ops, measured on this machine.

/** adjust_brightness: _blend(img, 0, f) = clamp(f x, 0, 1). */
function brightness(buf: Float32Array, off: number, length: number, f: number): void {
  const end = off + length;
  for (let q = off; q < end; q++) buf[q] = clamp01(f * buf[q]);
}

/** adjust_contrast: _blend(img, mean(luma), f) = clamp(f x + (1 - f) m, 0, 1), m the mean of
 * rgb_to_grayscale over the image (of the single channel for gray images). */
function contrast(buf: Float32Array, off: number, length: number, c: number, f: number): void {
  const end = off + length;
  let sum = 0;
  if (c === 3) {
    for (let q = off; q < end; q += 3) sum += GR * buf[q] + GG * buf[q + 1] + GB * buf[q + 2];
  } else {
    for (let q = off; q < end; q++) sum += buf[q];
  }
  const m = (1 - f) * (sum / (length / c));
  for (let q = off; q < end; q++) buf[q] = clamp01(f * buf[q] + m);
}

/** adjust_saturation: _blend(img, rgb_to_grayscale(img), f), per pixel. */
function saturation(buf: Float32Array, off: number, length: number, f: number): void {
  const end = off + length;
  const g1 = 1 - f;
  for (let q = off; q < end; q += 3) {
    const r = buf[q], g = buf[q + 1], b = buf[q + 2];
    const l = g1 * (GR * r + GG * g + GB * b);
    buf[q] = clamp01(f * r + l);
    buf[q + 1] = clamp01(f * g + l);
    buf[q + 2] = clamp01(f * b + l);
  }
}

/** adjust_hue: _rgb2hsv, h = (h + f) mod 1, _hsv2rgb, per pixel. Written for a CPU that must
 * guess branches: one decision tree orders the channels (max, min and torchvision's hue formula
 * for the max channel, with its tie order: red, then green, then blue), and _hsv2rgb's six-way
 * sector choice becomes the integer-free hexcone form: channel = v (1 - s (1 - x)) with x =
 * clamp(|6h - 3| - 1), clamp(2 - |6h - 2|), clamp(2 - |6h - 4|) for r, g, b, the clamp written
 * with abs (no branch). On [0, 1] data that is _hsv2rgb's (v, t, p), (q, v, p), ... exactly as
 * algebra (its clamps of p, q, t are then no-ops); gray pixels are left as they are (hue 0,
 * saturation 0 give back v); pixels with a value outside [0, 1] take hueExact. */
function hue(buf: Float32Array, off: number, length: number, f: number): void {
  const end = off + length;
  for (let q = off; q < end; q += 3) {
    const r = buf[q], g = buf[q + 1], b = buf[q + 2];
    // max, min, and torchvision's hue formula for the max channel: hr = bc - gc = (g - b) / cr,
    // hg = 2 + rc - bc = 2 + (b - r) / cr, hb = 4 + gc - rc = 4 + (r - g) / cr.
    let maxc: number, minc: number, base: number, num: number;
    if (r >= g) {
      if (g >= b) maxc = r, minc = b, base = 0, num = g - b;
      else if (r >= b) maxc = r, minc = g, base = 0, num = g - b;
      else maxc = b, minc = g, base = 4, num = r - g;
    } else if (r >= b) maxc = g, minc = b, base = 2, num = b - r;
    else if (g >= b) maxc = g, minc = r, base = 2, num = b - r;
    else maxc = b, minc = r, base = 4, num = r - g;
    const cr = maxc - minc;
    if (cr === 0 || minc < 0 || maxc > 1) {
      if (cr !== 0 || minc < 0 || maxc > 1) hueExact(buf, q, f);
      continue;
    }
    const h6 = base + num / cr;
    const s = cr / maxc;
    // fmod(h / 6 + 1, 1), then torch's (h + f) % 1 (remainder: on [0, 1)), in one floor: the
    // argument is positive, so x - floor(x) is both.
    let h = h6 / 6 + 1 + f;
    h -= Math.floor(h);
    const hh = 6 * h;
    const vs = maxc * s;
    const xr = Math.abs(hh - 3) - 1, xg = 2 - Math.abs(hh - 2), xb = 2 - Math.abs(hh - 4);
    buf[q] = maxc - vs * (1 - 0.5 * (Math.abs(xr) - Math.abs(xr - 1) + 1));
    buf[q + 1] = maxc - vs * (1 - 0.5 * (Math.abs(xg) - Math.abs(xg - 1) + 1));
    buf[q + 2] = maxc - vs * (1 - 0.5 * (Math.abs(xb) - Math.abs(xb - 1) + 1));
  }
}

/** adjust_hue on one pixel, literally: any values (outside [0, 1] too, where _hsv2rgb's clamps
 * of p, q, t matter). */
function hueExact(buf: Float32Array, q: number, f: number): void {
  const r = buf[q], g = buf[q + 1], b = buf[q + 2];
  const maxc = Math.max(r, g, b);
  const minc = Math.min(r, g, b);
  const cr = maxc - minc;
  const eqc = cr === 0;
  const s = cr / (eqc ? 1 : maxc);
  const div = eqc ? 1 : cr;
  const rc = (maxc - r) / div, gc = (maxc - g) / div, bc = (maxc - b) / div;
  const h6 = maxc === r ? bc - gc : maxc === g ? 2 + rc - bc : 4 + gc - rc;
  let h = (h6 / 6 + 1) % 1; // torch.fmod
  h += f;
  h -= Math.floor(h); // torch's remainder
  const hh = h * 6;
  const i = Math.floor(hh) % 6;
  const fr = hh - Math.floor(hh);
  const v = maxc;
  const p = clamp01(v * (1 - s));
  const qq = clamp01(v * (1 - s * fr));
  const t = clamp01(v * (1 - s * (1 - fr)));
  const rgb = [[v, t, p], [qq, v, p], [p, v, t], [p, qq, v], [t, p, v], [v, p, qq]][i];
  buf[q] = rgb[0];
  buf[q + 1] = rgb[1];
  buf[q + 2] = rgb[2];
}

/** rgb_to_grayscale(num_output_channels=3): the luma in all three channels. */
function grayscale(buf: Float32Array, off: number, length: number): void {
  const end = off + length;
  for (let q = off; q < end; q += 3) {
    buf[q] = buf[q + 1] = buf[q + 2] = GR * buf[q] + GG * buf[q + 1] + GB * buf[q + 2];
  }
}

/** normalize: (x - mean[c]) / std[c] (as x times 1 / std). */
function normalize(
  buf: Float32Array,
  off: number,
  length: number,
  c: number,
  shift: Float64Array,
  scale: Float64Array,
): void {
  const end = off + length;
  if (c === 3) {
    const m0 = shift[0], m1 = shift[1], m2 = shift[2];
    const s0 = scale[0], s1 = scale[1], s2 = scale[2];
    for (let q = off; q < end; q += 3) {
      buf[q] = (buf[q] - m0) * s0;
      buf[q + 1] = (buf[q + 1] - m1) * s1;
      buf[q + 2] = (buf[q + 2] - m2) * s2;
    }
  } else {
    const m = shift[0], sc = scale[0];
    for (let q = off; q < end; q++) buf[q] = (buf[q] - m) * sc;
  }
}
