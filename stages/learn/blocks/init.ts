// Seeded parameters for a model description: PyTorch's defaults (weights and biases uniform on
// +-1/sqrt(fan_in), batch-norm scale 1 and shift 0, running mean 0 and variance 1), each tensor
// drawn from its own stream keyed by (seed, name), so adding a block never changes another's.

import { Rng } from "../../../core/rng.ts";
import type { ParamSpec } from "./model.ts";

export type Params = Map<string, Float32Array>;

export function initParams(specs: readonly ParamSpec[], seed: number): Params {
  const params: Params = new Map();
  for (const spec of specs) {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(size);
    if (spec.init === "one") values.fill(1);
    else if (spec.init === "weight" || spec.init === "bias") {
      const bound = 1 / Math.sqrt(spec.fanIn);
      const rng = new Rng(seed, "init", spec.name);
      for (let i = 0; i < size; i++) values[i] = (2 * rng.uniform() - 1) * bound;
    }
    params.set(spec.name, values);
  }
  return params;
}
