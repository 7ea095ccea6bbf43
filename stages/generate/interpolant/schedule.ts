// Interpolant schedules: x_t = alpha(t) x0 + beta(t) x1 + gamma(t) z, with t = 0 the base (noise)
// and t = 1 the data. A schedule family gives alpha, beta and their derivatives; a latent noise
// gives gamma and gamma * gamma' (carried as its own closed form: it stays finite at the ends
// where gamma' does not). Formulas: ../shared/spec/math.md.

export const SCHEDULES = ["linear", "linear-smin", "trig", "vp"] as const;
export type ScheduleName = (typeof SCHEDULES)[number];
export const LATENT_NOISES = ["none", "brownian", "a-brownian", "bsquared", "sinesquared"] as const;
export type LatentNoiseName = (typeof LATENT_NOISES)[number];

export interface InterpolantOptions {
  readonly schedule: ScheduleName;
  readonly gamma: LatentNoiseName;
  /** linear-smin: alpha(1) = sigmaMin. */
  readonly sigmaMin?: number;
  /** a-brownian: gamma = sqrt(a t (1 - t)). */
  readonly a?: number;
  /** vp: the variance-preserving diffusion's beta_min and beta_max. */
  readonly vpBetaMin?: number;
  readonly vpBetaMax?: number;
}

/** The coefficients at one time. */
export interface Coefficients {
  /** The time they are at (a network field is a function of t, not of the coefficients). */
  readonly t: number;
  readonly alpha: number;
  readonly alphaDot: number;
  readonly beta: number;
  readonly betaDot: number;
  readonly gamma: number;
  /** gamma * gamma'. */
  readonly gammaGammaDot: number;
  /** alpha^2 + gamma^2: the variance of each Gaussian of rho_t around beta y_i. */
  readonly sigma2: number;
  /** sigma * sigma' = alpha alpha' + gamma gamma'. */
  readonly sigmaSigmaDot: number;
}

export interface Interpolant {
  readonly options: InterpolantOptions;
  at(t: number): Coefficients;
}

/** [alpha, alpha', beta, beta', alpha alpha'] (the product in closed form: finite where alpha' is not). */
function scheduleAt(o: InterpolantOptions, t: number): [number, number, number, number, number] {
  switch (o.schedule) {
    case "linear":
      return [1 - t, -1, t, 1, -(1 - t)];
    case "linear-smin": {
      const s = o.sigmaMin ?? 1e-3;
      const alpha = 1 - (1 - s) * t;
      return [alpha, -(1 - s), t, 1, -(1 - s) * alpha];
    }
    case "trig": {
      const h = (Math.PI / 2) * t;
      const [c, s] = [Math.cos(h), Math.sin(h)];
      return [c, -(Math.PI / 2) * s, s, (Math.PI / 2) * c, -(Math.PI / 2) * s * c];
    }
    case "vp": {
      const bmin = o.vpBetaMin ?? 0.1;
      const bmax = o.vpBetaMax ?? 20;
      const u = 1 - t;
      const beta = Math.exp(-u * u * (bmax - bmin) / 4 - u * bmin / 2);
      const betaDot = beta * (u * (bmax - bmin) / 2 + bmin / 2);
      const alpha = Math.sqrt(Math.max(0, 1 - beta * beta));
      // alpha' = -beta beta' / alpha is infinite at t = 1; samplers never evaluate there.
      return [
        alpha,
        alpha > 0 ? -beta * betaDot / alpha : -Infinity,
        beta,
        betaDot,
        -beta * betaDot,
      ];
    }
  }
}

function latentAt(o: InterpolantOptions, t: number): [number, number] {
  switch (o.gamma) {
    case "none":
      return [0, 0];
    case "brownian":
      return [Math.sqrt(t * (1 - t)), (1 - 2 * t) / 2];
    case "a-brownian": {
      const a = o.a ?? 1;
      return [Math.sqrt(a * t * (1 - t)), a * (1 - 2 * t) / 2];
    }
    case "bsquared":
      return [t * (1 - t), t * (1 - t) * (1 - 2 * t)];
    case "sinesquared": {
      const s = Math.sin(Math.PI * t);
      return [s * s, 2 * Math.PI * s * s * s * Math.cos(Math.PI * t)];
    }
  }
}

export function interpolant(options: InterpolantOptions): Interpolant {
  return {
    options,
    at(t: number): Coefficients {
      const [alpha, alphaDot, beta, betaDot, alphaAlphaDot] = scheduleAt(options, t);
      const [gamma, gammaGammaDot] = latentAt(options, t);
      return {
        t,
        alpha,
        alphaDot,
        beta,
        betaDot,
        gamma,
        gammaGammaDot,
        sigma2: alpha * alpha + gamma * gamma,
        sigmaSigmaDot: alphaAlphaDot + gammaGammaDot,
      };
    },
  };
}
