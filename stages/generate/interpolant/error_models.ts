// Estimation error on purpose (paper Theorem 3, Corollaries 1 to 3): a trained field is
// b^ = b* + delta, and the size of delta decides between landing on the training set, staying in a
// ball around it, and diverging. Each model scales a fixed unit direction u per sample (a
// systematic error, the adversarial case for the drift).

import type { FieldValue } from "./field.ts";
import { spread } from "./field.ts";
import type { Coefficients } from "./schedule.ts";

export const ERROR_MODELS = ["none", "bounded", "time-scaled", "density-inverse"] as const;
export type ErrorModelName = (typeof ERROR_MODELS)[number];

export interface ErrorModelOptions {
  readonly model: ErrorModelName;
  /** bounded and time-scaled: |delta| = C, or C (1 - t)^(-p). */
  readonly c?: number;
  readonly p?: number;
  /** density-inverse (Eq. 10): delta = eps0 exp(min_i |x - beta y_i|^2 / (2 sigma^2)) u. */
  readonly eps0?: number;
  readonly bothEnds?: boolean;
}

/** Exponents are capped so a diverging sample stays finite: divergence is the prediction. */
const MAX_EXPONENT = 80;

/** The size |delta| for query q at time t. */
export function errorSize(
  o: ErrorModelOptions,
  t: number,
  c: Coefficients,
  v: FieldValue,
  q: number,
): number {
  switch (o.model) {
    case "none":
      return 0;
    case "bounded":
      return o.c ?? 1;
    case "time-scaled":
      return (o.c ?? 1) * Math.pow(1 - t, -(o.p ?? 1));
    case "density-inverse": {
      const { sigma2 } = spread(c, o.bothEnds ?? false);
      return (o.eps0 ?? 1) * Math.exp(Math.min(MAX_EXPONENT, v.nearest2[q] / (2 * sigma2)));
    }
  }
}

/** out += delta(t, x) for every query; `directions` holds one unit vector per query. */
export function addError(
  o: ErrorModelOptions,
  t: number,
  c: Coefficients,
  v: FieldValue,
  directions: Float64Array,
  out: Float64Array,
  b: number,
): void {
  if (o.model === "none") return;
  const d = out.length / b;
  for (let q = 0; q < b; q++) {
    const size = errorSize(o, t, c, v, q);
    for (let j = 0; j < d; j++) out[q * d + j] += size * directions[q * d + j];
  }
}
