// The sampler options every interpolant generator shares (closed-form, onnx-flow): one schema and
// one check, so both stages read the same keys the same way and reject the same combinations.

import { keyError } from "../../core/errors.ts";
import type { Resolved } from "../../core/schema.ts";
import { EPS_FORMS, isSde, LAST_STEPS, ODE_METHODS, SDE_METHODS } from "./interpolant/samplers.ts";
import type { Method } from "./interpolant/samplers.ts";

export const SAMPLER_PARAMS = {
  sampler: {
    type: "enum",
    values: ["ode", "sde"],
    default: "ode",
    doc: "deterministic or stochastic generation",
  },
  method: {
    type: "enum",
    values: ["auto", ...ODE_METHODS, ...SDE_METHODS],
    default: "auto",
    doc: "integrator; auto = euler (ode) or em (sde)",
  },
  steps: {
    type: "int",
    min: 1,
    default: 100,
    doc: "time steps on a uniform grid (NFE = steps x stages)",
  },
  tEnd: { type: "number", above: 0, max: 1, default: 1, doc: "last time of the grid" },
  eps: { type: "number", min: 0, default: null, doc: "SDE only: eps0 of eps(t) (default 0.01)" },
  epsForm: {
    type: "enum",
    values: EPS_FORMS,
    default: "constant",
    doc: "SDE only: shape of eps(t)",
  },
  lastStep: {
    type: "enum",
    values: LAST_STEPS,
    default: "none",
    doc: "last step as is, its mean, or the denoiser",
  },
} as const;

export interface SamplerChoice {
  readonly sde: boolean;
  readonly method: Method;
  /** eps0 of eps(t): 0 for the ODE. */
  readonly eps0: number;
}

/** The integrator the options name, after rejecting combinations the schema can't express. */
export function samplerChoice(p: Resolved<typeof SAMPLER_PARAMS>): SamplerChoice {
  const sde = p.sampler === "sde";
  if (!sde && p.eps !== null) {
    throw keyError("generate.params.eps", "applies to sampler=sde only (the ODE has no noise)");
  }
  if (!sde && p.lastStep === "mean") {
    throw keyError("generate.params.lastStep", "mean applies to sampler=sde only");
  }
  const method: Method = p.method === "auto" ? (sde ? "em" : "euler") : p.method;
  if (sde !== isSde(method)) {
    throw keyError(
      "method",
      `${method} is ${sde ? "an ODE" : "an SDE"} method; sampler is ${p.sampler}`,
    );
  }
  return { sde, method, eps0: sde ? p.eps ?? 0.01 : 0 };
}
