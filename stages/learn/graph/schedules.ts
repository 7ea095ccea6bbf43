// Learning-rate schedules, computed outside the graph and fed as its "lr" input each step, and
// the parameter EMA of MoCo's key encoder (theta_k <- m theta_k + (1 - m) theta_q).

/** Linear warm-up from 0 over `warmup` steps, then cosine decay to `floor` at `total`. */
export function cosineWithWarmup(
  step: number,
  options: { base: number; warmup: number; total: number; floor?: number },
): number {
  const { base, warmup, total } = options;
  const floor = options.floor ?? 0;
  if (step < warmup) return (base * (step + 1)) / warmup;
  const progress = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return floor + (base - floor) * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/** Adam's bias corrections for step t (1-based): 1 / (1 - beta1^t), 1 / (1 - beta2^t). */
export function adamCorrections(
  t: number,
  beta1: number,
  beta2: number,
): { adam_c1: number; adam_c2: number } {
  return { adam_c1: 1 / (1 - beta1 ** t), adam_c2: 1 / (1 - beta2 ** t) };
}

/** target <- m target + (1 - m) source, in place, over matching tensors. */
export function emaUpdate(target: Float32Array, source: Float32Array, m: number): void {
  if (target.length !== source.length) {
    throw new Error(`ema: ${target.length} vs ${source.length} values`);
  }
  for (let i = 0; i < target.length; i++) target[i] = m * target[i] + (1 - m) * source[i];
}
