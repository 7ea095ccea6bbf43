// Small dense symmetric positive-definite solves (P x P systems with P in the tens to hundreds):
// Cholesky factorisation A = L L^T, then two triangular solves. A ridge keeps a rank-deficient
// Gram matrix solvable.

/**
 * Solves (A + ridge I) x = b for a symmetric positive semi-definite A ([n * n], row-major).
 * Throws when the matrix is not positive definite even with the ridge.
 */
export function solveSpd(a: ArrayLike<number>, b: ArrayLike<number>, n: number, ridge = 0) {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * n + j] + (i === j ? ridge : 0);
      for (let k = 0; k < j; k++) s -= l[i * n + k] * l[j * n + k];
      if (i === j) {
        if (!(s > 0)) throw new Error(`solveSpd: not positive definite at pivot ${i} (${s})`);
        l[i * n + i] = Math.sqrt(s);
      } else l[i * n + j] = s / l[j * n + j];
    }
  }
  const x = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = b[i];
    for (let k = 0; k < i; k++) s -= l[i * n + k] * x[k];
    x[i] = s / l[i * n + i];
  }
  for (let i = n - 1; i >= 0; i--) {
    let s = x[i];
    for (let k = i + 1; k < n; k++) s -= l[k * n + i] * x[k];
    x[i] = s / l[i * n + i];
  }
  return x;
}
