// Statistics over seeds: mean, sample standard deviation, the 95 % Student-t interval of a mean,
// and paired comparisons (per-seed differences, their interval, and sign counts). Differences
// between arms are read from paired intervals: an interval that excludes 0 is a difference.

export interface Summary {
  readonly n: number;
  readonly mean: number;
  /** Sample standard deviation (n - 1); 0 for one value. */
  readonly sd: number;
  /** The t-interval of the mean at `level`; NaN for fewer than two values. */
  readonly lo: number;
  readonly hi: number;
}

export interface Paired extends Summary {
  /** a_i - b_i, in the order given. */
  readonly differences: readonly number[];
  /** Pairs with a > b, a < b and a = b (the sign test's counts). */
  readonly above: number;
  readonly below: number;
  readonly ties: number;
}

/** ln Gamma(x), x > 0 (Lanczos, g = 7, 9 terms: about 15 digits). */
function lnGamma(x: number): number {
  const c = [
    0.99999999999980993,
    676.5203681218851,
    -1259.1392167224028,
    771.32342877765313,
    -176.61502916214059,
    12.507343278686905,
    -0.13857109526572012,
    9.9843695780195716e-6,
    1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** The regularised incomplete beta I_x(a, b) by its continued fraction (Lentz). */
function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  // The fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry otherwise.
  if (x > (a + 1) / (a + b + 2)) return 1 - incompleteBeta(1 - x, b, a);
  const front = Math.exp(
    lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log(1 - x),
  ) / a;
  const tiny = 1e-300;
  let f = 1;
  let c = 1;
  let d = 0;
  for (let i = 0; i <= 400; i++) {
    const m = Math.floor(i / 2);
    const numerator = i === 0
      ? 1
      : i % 2 === 0
      ? (m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m))
      : -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1));
    d = 1 + numerator * d;
    d = 1 / (Math.abs(d) < tiny ? tiny : d);
    c = 1 + numerator / c;
    if (Math.abs(c) < tiny) c = tiny;
    const cd = c * d;
    f *= cd;
    if (Math.abs(1 - cd) < 1e-15) break;
  }
  return front * (f - 1);
}

/** P(T <= t) for Student's t with `df` degrees of freedom. */
export function studentCdf(t: number, df: number): number {
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** The p-quantile of Student's t (bisection on the CDF, to 1e-12). */
export function studentQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1) || !(df > 0)) throw new Error(`studentQuantile: p ${p}, df ${df}`);
  if (p < 0.5) return -studentQuantile(1 - p, df);
  let lo = 0;
  let hi = 1;
  while (studentCdf(hi, df) < p) hi *= 2;
  while (hi - lo > 1e-12 * Math.max(1, hi)) {
    const mid = (lo + hi) / 2;
    if (studentCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

export function summarize(values: readonly number[], level = 0.95): Summary {
  const n = values.length;
  const mean = n ? values.reduce((a, b) => a + b, 0) / n : NaN;
  const sd = n > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1)) : 0;
  if (n < 2) return { n, mean, sd, lo: NaN, hi: NaN };
  const half = studentQuantile(1 - (1 - level) / 2, n - 1) * sd / Math.sqrt(n);
  return { n, mean, sd, lo: mean - half, hi: mean + half };
}

/** a_i - b_i over pairs (the same seed in two arms): interval of the mean difference, signs. */
export function paired(a: readonly number[], b: readonly number[], level = 0.95): Paired {
  if (a.length !== b.length) throw new Error(`paired: ${a.length} vs ${b.length} values`);
  const differences = a.map((v, i) => v - b[i]);
  return {
    ...summarize(differences, level),
    differences,
    above: differences.filter((d) => d > 0).length,
    below: differences.filter((d) => d < 0).length,
    ties: differences.filter((d) => d === 0).length,
  };
}

/**
 * The Mann-Whitney U of a against b as a z-score: U counts pairs with a_i > b_j (ties 1/2), and
 * z = (U - n m / 2) / sqrt(n m (n + m + 1) / 12). Negative when a tends to lie below b: with a the
 * distances of generated samples to the training set and b those of held-out real images, the
 * data-copying statistic Z_U of Meehan, Chaudhuri and Dasgupta (2020), without their cells.
 */
export function mannWhitneyZ(a: readonly number[], b: readonly number[]): number {
  const all = [...a.map((v) => [v, 0] as const), ...b.map((v) => [v, 1] as const)]
    .sort((x, y) => x[0] - y[0]);
  // Mid-ranks over ties; U of a = (sum of a's ranks) - n (n + 1) / 2.
  let rankSum = 0;
  for (let i = 0; i < all.length;) {
    let j = i;
    while (j + 1 < all.length && all[j + 1][0] === all[i][0]) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) if (all[k][1] === 0) rankSum += rank;
    i = j + 1;
  }
  const [n, m] = [a.length, b.length];
  const u = rankSum - (n * (n + 1)) / 2;
  return (u - (n * m) / 2) / Math.sqrt((n * m * (n + m + 1)) / 12);
}
