// A scattering-style wavelet feature map for the kernel generator (seed 003 uses scattering
// features for images and fields; Mallat 2012, Bruna and Mallat 2013). On an h x w periodic grid,
// with Morlet wavelets psi_{j,theta} at J scales 2^j and L orientations theta = pi l / L and the
// Gaussian low-pass phi_J at scale 2^J, all defined in Fourier,
//   S0 = x * phi_J,  S1[l1] = |x * psi_l1| * phi_J,  S2[l1, l2] = ||x * psi_l1| * psi_l2| * phi_J
// for j2 > j1, each subsampled by 2^J: 1 + J L + L^2 J (J - 1) / 2 channels (81 for J = 2,
// L = 8, on a 7 x 7 grid at 28 x 28). The kernel's features are each channel's mean over that
// grid, phi_i(x) = <w, U_i(x)> with w the adjoint of "low-pass, subsample, average" applied to
// one: a fixed image of period 2^J, so the features are exactly invariant to shifts by
// multiples of 2^J and P depends on J and L only, never on d. The moduli are where stability to
// small shifts and deformations comes from: they discard the wavelets' phase, which is what a
// small shift moves. Gradients are exact: for U = |C u| with C = IDFT diag(psi^) DFT,
// the vector-Jacobian product of g is Re(C^H (g Y / |Y|)), C^H = IDFT diag(conj psi^) DFT.

import { SiaError } from "../../core/errors.ts";
import type { FeatureMap } from "./kernel.ts";

/** One wavelet's scale index j and its Fourier transform on the grid. */
interface Wavelet {
  readonly j: number;
  readonly re: Float64Array;
}

/** 1 + J L + L^2 J (J - 1) / 2: the number of scattering channels of orders 0, 1 and 2. */
export function scatteringChannels(scales: number, orientations: number): number {
  return 1 + scales * orientations + (orientations ** 2 * scales * (scales - 1)) / 2;
}

/** Morlet width (in pixels at scale 1) and centre frequency, kymatio's defaults. */
const SIGMA = 0.8;
const XI = (3 * Math.PI) / 4;

/** The transform's filters and DFT tables for h x w images. */
export class Scattering {
  readonly channels: number;
  readonly d: number;
  readonly wavelets: Wavelet[];
  /** phi_J^ (real, phi^(0) = 1). */
  readonly lowPass: Float64Array;
  /** The averaging image w with phi_i = <w, U_i>. */
  readonly weight: Float64Array;
  /** Second-order pairs [l1, l2] with j2 > j1, in channel order. */
  readonly pairs: [number, number][];
  private readonly cosH: Float64Array;
  private readonly sinH: Float64Array;
  private readonly cosW: Float64Array;
  private readonly sinW: Float64Array;
  private readonly scratch: Float64Array;

  constructor(
    readonly h: number,
    readonly w: number,
    readonly scales: number,
    orientations: number,
  ) {
    const stride = 2 ** scales;
    if (h % stride !== 0 || w % stride !== 0) {
      throw new SiaError(
        `generate.params.scales: ${h} x ${w} images are not divisible by 2^J = ${stride}`,
      );
    }
    this.d = h * w;
    this.channels = scatteringChannels(scales, orientations);
    const table = (n: number, f: (a: number) => number) =>
      Float64Array.from(
        { length: n * n },
        (_, i) => f((2 * Math.PI * Math.floor(i / n) * (i % n)) / n),
      );
    this.cosH = table(h, Math.cos);
    this.sinH = table(h, Math.sin);
    this.cosW = table(w, Math.cos);
    this.sinW = table(w, Math.sin);
    this.scratch = new Float64Array(2 * Math.max(h, w));
    // Frequencies wrapped to [-pi, pi): omega_k = 2 pi k / n for k < n / 2, else 2 pi (k - n) / n.
    const freq = (k: number, n: number) => (2 * Math.PI * (k < n / 2 ? k : k - n)) / n;
    const gaussian = (s: number, cu: number, cv: number) =>
      Float64Array.from({ length: this.d }, (_, i) => {
        const du = freq(Math.floor(i / w), h) - cu, dv = freq(i % w, w) - cv;
        return Math.exp((-s * s * (du * du + dv * dv)) / 2);
      });
    this.wavelets = [];
    for (let j = 0; j < scales; j++) {
      const s = SIGMA * 2 ** j, xi = XI / 2 ** j;
      // The Morlet correction kappa makes psi^(0) = 0: the wavelets carry no mean.
      const envelope = gaussian(s, 0, 0);
      const kappa = Math.exp((-s * s * xi * xi) / 2);
      for (let l = 0; l < orientations; l++) {
        const theta = (Math.PI * l) / orientations;
        const re = gaussian(s, xi * Math.cos(theta), xi * Math.sin(theta));
        for (let i = 0; i < this.d; i++) re[i] -= kappa * envelope[i];
        this.wavelets.push({ j, re });
      }
    }
    this.pairs = [];
    this.wavelets.forEach((a, l1) =>
      this.wavelets.forEach((b, l2) => {
        if (b.j > a.j) this.pairs.push([l1, l2]);
      })
    );
    this.lowPass = gaussian(SIGMA * stride, 0, 0);
    // w(x) = mean over the grid points v of phi_J(v - x): the adjoint of low-pass, subsample,
    // average, applied to 1 (phi_J^ is real and even, so the adjoint filter is phi_J itself).
    const re = new Float64Array(this.d), im = new Float64Array(this.d);
    const cells = (h / stride) * (w / stride);
    for (let u = 0; u < h; u += stride) {
      for (let v = 0; v < w; v += stride) re[u * w + v] = 1 / cells;
    }
    this.filter(re, im, this.lowPass);
    this.weight = re;
  }

  /** In place: the 2-D DFT (sign -1) or its inverse with the 1 / d factor (sign 1). */
  dft(re: Float64Array, im: Float64Array, sign: 1 | -1): void {
    const { h, w, scratch } = this;
    const pass = (
      n: number,
      count: number,
      at: (a: number, k: number) => number,
      c: Float64Array,
      s: Float64Array,
    ) => {
      for (let a = 0; a < count; a++) {
        for (let k = 0; k < n; k++) {
          let sr = 0, si = 0;
          for (let m = 0; m < n; m++) {
            const q = at(a, m), cs = c[k * n + m], sn = sign * s[k * n + m];
            sr += re[q] * cs - im[q] * sn;
            si += re[q] * sn + im[q] * cs;
          }
          scratch[k] = sr;
          scratch[n + k] = si;
        }
        for (let k = 0; k < n; k++) {
          re[at(a, k)] = scratch[k];
          im[at(a, k)] = scratch[n + k];
        }
      }
    };
    pass(w, h, (row, m) => row * w + m, this.cosW, this.sinW);
    pass(h, w, (col, m) => m * w + col, this.cosH, this.sinH);
    if (sign === 1) {
      for (let i = 0; i < this.d; i++) {
        re[i] /= this.d;
        im[i] /= this.d;
      }
    }
  }

  /** In place: the periodic convolution with the filter whose DFT is the real `hat`. */
  filter(re: Float64Array, im: Float64Array, hat: Float64Array): void {
    this.dft(re, im, -1);
    for (let i = 0; i < this.d; i++) {
      re[i] *= hat[i];
      im[i] *= hat[i];
    }
    this.dft(re, im, 1);
  }

  /** The first- and second-order complex wavelet responses Y and moduli U of one image. */
  forward(x: Float64Array, offset = 0): Responses {
    const { d, wavelets, pairs } = this;
    const hatRe = x.slice(offset, offset + d), hatIm = new Float64Array(d);
    this.dft(hatRe, hatIm, -1);
    const first = wavelets.map((psi) => this.response(hatRe, hatIm, psi.re));
    const spectra = new Map<number, [Float64Array, Float64Array]>();
    const second = pairs.map(([l1, l2]) => {
      let spectrum = spectra.get(l1);
      if (!spectrum) {
        spectrum = [first[l1].u.slice(), new Float64Array(d)];
        this.dft(spectrum[0], spectrum[1], -1);
        spectra.set(l1, spectrum);
      }
      return this.response(spectrum[0], spectrum[1], wavelets[l2].re);
    });
    return { x: x.subarray(offset, offset + d), first, second };
  }

  /** Y = IDFT(hat psi^) and U = |Y|. */
  private response(hatRe: Float64Array, hatIm: Float64Array, psi: Float64Array): Response {
    const re = new Float64Array(this.d),
      im = new Float64Array(this.d),
      u = new Float64Array(this.d);
    for (let i = 0; i < this.d; i++) {
      re[i] = hatRe[i] * psi[i];
      im[i] = hatIm[i] * psi[i];
    }
    this.dft(re, im, 1);
    for (let i = 0; i < this.d; i++) u[i] = Math.hypot(re[i], im[i]);
    return { re, im, u };
  }

  /** The P = channels features phi_i = <w, U_i>, in channel order (S0, S1, S2). */
  features(r: Responses, out: Float64Array): Float64Array {
    const maps = [r.x, ...r.first.map((y) => y.u), ...r.second.map((y) => y.u)];
    maps.forEach((u, i) => {
      let s = 0;
      for (let v = 0; v < this.d; v++) s += this.weight[v] * u[v];
      out[i] = s;
    });
    return out;
  }

  /** The full transform: [channels][(h / 2^J) x (w / 2^J)], low-passed and subsampled. */
  transform(x: Float64Array): Float64Array[] {
    const r = this.forward(x);
    const stride = 2 ** this.scales;
    return [r.x, ...r.first.map((y) => y.u), ...r.second.map((y) => y.u)].map((u) => {
      const re = Float64Array.from(u), im = new Float64Array(this.d);
      this.filter(re, im, this.lowPass);
      const out: number[] = [];
      for (let a = 0; a < this.h; a += stride) {
        for (let b = 0; b < this.w; b += stride) out.push(re[a * this.w + b]);
      }
      return Float64Array.from(out);
    });
  }

  /**
   * grad(sum_i e_i phi_i)(x) for the responses of x, into out: the backward pass through the
   * moduli and wavelet filters, summed in Fourier over the wavelets that share a parent.
   */
  vjp(r: Responses, e: Float64Array, out: Float64Array): Float64Array {
    const { d, wavelets, pairs, weight } = this;
    const nFirst = wavelets.length;
    // gU1[l1] = e_l1 w + Re(C_l2^H (e_l1l2 w Y2 / |Y2|)) over its children l2.
    const gradU1 = wavelets.map((_, l) => {
      const g = new Float64Array(d);
      for (let v = 0; v < d; v++) g[v] = e[1 + l] * weight[v];
      return g;
    });
    const children = new Map<number, [Float64Array, Float64Array]>();
    pairs.forEach(([l1, l2], k) => {
      const coef = e[1 + nFirst + k];
      if (coef === 0) return;
      const [re, im] = this.phase(r.second[k], weight, coef);
      this.dft(re, im, -1);
      let acc = children.get(l1);
      if (!acc) children.set(l1, acc = [new Float64Array(d), new Float64Array(d)]);
      const psi = wavelets[l2].re;
      for (let v = 0; v < d; v++) {
        acc[0][v] += psi[v] * re[v];
        acc[1][v] += psi[v] * im[v];
      }
    });
    for (const [l1, [re, im]] of children) {
      this.dft(re, im, 1);
      for (let v = 0; v < d; v++) gradU1[l1][v] += re[v];
    }
    // gx = e_0 w + Re(sum_l1 C_l1^H (gU1 Y1 / |Y1|)), summed in Fourier then one inverse DFT.
    const accRe = new Float64Array(d), accIm = new Float64Array(d);
    wavelets.forEach((psi, l) => {
      // A unit e (one feature's gradient, in the fit) reaches one parent only: skip the rest.
      if (e[1 + l] === 0 && !children.has(l)) return;
      const [re, im] = this.phase(r.first[l], gradU1[l], 1);
      this.dft(re, im, -1);
      for (let v = 0; v < d; v++) {
        accRe[v] += psi.re[v] * re[v];
        accIm[v] += psi.re[v] * im[v];
      }
    });
    this.dft(accRe, accIm, 1);
    for (let v = 0; v < d; v++) out[v] = e[0] * weight[v] + accRe[v];
    return out;
  }

  /** coef g Y / |Y| (0 where Y = 0, a subgradient of the modulus). */
  private phase(y: Response, g: Float64Array, coef: number): [Float64Array, Float64Array] {
    const re = new Float64Array(this.d), im = new Float64Array(this.d);
    for (let v = 0; v < this.d; v++) {
      if (y.u[v] > 0) {
        const s = (coef * g[v]) / y.u[v];
        re[v] = s * y.re[v];
        im[v] = s * y.im[v];
      }
    }
    return [re, im];
  }
}

interface Response {
  readonly re: Float64Array;
  readonly im: Float64Array;
  readonly u: Float64Array;
}

/** One image's responses, kept for the backward pass. */
export interface Responses {
  readonly x: Float64Array;
  readonly first: Response[];
  readonly second: Response[];
}

/**
 * The wavelet feature map for the kernel: K_t and r_t from each state's P feature gradients
 * (one vector-Jacobian product per feature), the drift from one product with eta.
 */
export function scatteringFeatures(
  h: number,
  w: number,
  scales: number,
  orientations: number,
): FeatureMap {
  const s = new Scattering(h, w, scales, orientations);
  const p = s.channels, d = s.d;
  const unit = new Float64Array(p);
  const grads = new Float64Array(p * d);
  return {
    p,
    d,
    fit(_c, states, velocities, n) {
      const k = new Float64Array(p * p);
      const r = new Float64Array(p);
      for (let q = 0; q < n; q++) {
        const resp = s.forward(states, q * d);
        for (let i = 0; i < p; i++) {
          unit.fill(0);
          unit[i] = 1;
          s.vjp(resp, unit, grads.subarray(i * d, (i + 1) * d));
        }
        for (let i = 0; i < p; i++) {
          let dot = 0;
          for (let v = 0; v < d; v++) dot += grads[i * d + v] * velocities[q * d + v];
          r[i] += dot / n;
          for (let l = 0; l <= i; l++) {
            let g = 0;
            for (let v = 0; v < d; v++) g += grads[i * d + v] * grads[l * d + v];
            k[i * p + l] += g / n;
          }
        }
      }
      for (let i = 0; i < p; i++) for (let l = 0; l < i; l++) k[l * p + i] = k[i * p + l];
      return { k, r };
    },
    drift(_c, eta, x, b, out) {
      for (let q = 0; q < b; q++) s.vjp(s.forward(x, q * d), eta, out.subarray(q * d, (q + 1) * d));
    },
  };
}
