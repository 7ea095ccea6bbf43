// Optimizers as graph pieces: each parameter's update, with its optimizer state as inputs and
// outputs, so a whole training step is one session.run. The learning rate is an input ("lr"),
// fed per step from a schedule computed outside the graph (schedules.ts).

import type { GraphBuilder } from "../../../core/onnx.ts";
import type { ParamSpec } from "../blocks/model.ts";

export type Optimizer =
  /** PyTorch's SGD: v = mu v + (g + wd theta); theta -= lr v (nesterov: theta -= lr (g' + mu v)). */
  | {
    readonly kind: "sgd";
    readonly momentum: number;
    readonly weightDecay: number;
    readonly nesterov?: boolean;
  }
  /**
   * LARS as SimCLR uses it: d = g + wd theta, trust = eta |theta| / |d| per tensor, v = mu v +
   * lr trust d, theta -= v; biases and batch-norm parameters skip weight decay and trust.
   */
  | {
    readonly kind: "lars";
    readonly momentum: number;
    readonly weightDecay: number;
    readonly eta: number;
  }
  /** Adam (L2 weight decay added to the gradient); bias corrections enter as inputs. */
  | {
    readonly kind: "adam";
    readonly beta1: number;
    readonly beta2: number;
    readonly eps: number;
    readonly weightDecay: number;
  };

/** Names of a parameter's optimizer state tensors (same shape as the parameter). */
export function stateNames(optimizer: Optimizer, param: string): string[] {
  return optimizer.kind === "adam" ? [`${param}.adam_m`, `${param}.adam_v`] : [`${param}.momentum`];
}

/** Scalar inputs the update reads besides "lr": Adam's bias corrections 1/(1-b1^t), 1/(1-b2^t). */
export function extraInputs(optimizer: Optimizer): string[] {
  return optimizer.kind === "adam" ? ["adam_c1", "adam_c2"] : [];
}

function isExcluded(spec: ParamSpec): boolean {
  return !spec.name.endsWith(".weight");
}

/** Emits the update of one parameter; returns the new parameter and state values. */
export function emitUpdate(
  g: GraphBuilder,
  optimizer: Optimizer,
  spec: ParamSpec,
  grad: string,
): { param: string; state: string[] } {
  const k = (name: string, value: number) =>
    g.constant(`${spec.name}.${name}`, Float32Array.of(value), []);
  const theta = spec.name;
  const [state0] = stateNames(optimizer, spec.name);
  const decay = (
    wd: number,
  ) => (wd > 0 ? g.node("Add", [grad, ...g.node("Mul", [theta, k("wd", wd)])])[0] : grad);
  switch (optimizer.kind) {
    case "sgd": {
      const d = decay(optimizer.weightDecay);
      const [v] = g.node("Add", [...g.node("Mul", [state0, k("mu", optimizer.momentum)]), d]);
      const step = optimizer.nesterov
        ? g.node("Add", [d, ...g.node("Mul", [v, `${spec.name}.mu`])])[0]
        : v;
      const [param] = g.node("Sub", [theta, ...g.node("Mul", [step, "lr"])]);
      return { param, state: [v] };
    }
    case "lars": {
      if (isExcluded(spec)) {
        const [v] = g.node("Add", [
          ...g.node("Mul", [state0, k("mu", optimizer.momentum)]),
          ...g.node("Mul", [grad, "lr"]),
        ]);
        return { param: g.node("Sub", [theta, v])[0], state: [v] };
      }
      const d = decay(optimizer.weightDecay);
      const norm = (x: string) =>
        g.node("ReduceL2", [x], { attributes: { keepdims: { int: 0 } } })[0];
      const [thetaNorm, dNorm] = [norm(theta), norm(d)];
      // trust = eta |theta| / |d| where both norms are positive, else 1.
      const zero = k("zero", 0);
      const [both] = g.node("And", [
        ...g.node("Greater", [thetaNorm, zero]),
        ...g.node("Greater", [dNorm, zero]),
      ]);
      const [ratio] = g.node("Div", [
        ...g.node("Mul", [thetaNorm, k("eta", optimizer.eta)]),
        ...g.node("Max", [dNorm, k("tiny", 1e-30)]),
      ]);
      const [trust] = g.node("Where", [both, ratio, k("one", 1)]);
      const [v] = g.node("Add", [
        ...g.node("Mul", [state0, k("mu", optimizer.momentum)]),
        ...g.node("Mul", [...g.node("Mul", [d, trust]), "lr"]),
      ]);
      return { param: g.node("Sub", [theta, v])[0], state: [v] };
    }
    case "adam": {
      const d = decay(optimizer.weightDecay);
      const [, state1] = stateNames(optimizer, spec.name);
      const [m] = g.node("Add", [
        ...g.node("Mul", [state0, k("b1", optimizer.beta1)]),
        ...g.node("Mul", [d, k("1mb1", 1 - optimizer.beta1)]),
      ]);
      const [v] = g.node("Add", [
        ...g.node("Mul", [state1, k("b2", optimizer.beta2)]),
        ...g.node("Mul", [...g.node("Mul", [d, d]), k("1mb2", 1 - optimizer.beta2)]),
      ]);
      const [mHat] = g.node("Mul", [m, "adam_c1"]);
      const [denominator] = g.node("Add", [
        ...g.node("Sqrt", g.node("Mul", [v, "adam_c2"])),
        k("eps", optimizer.eps),
      ]);
      const [param] = g.node("Sub", [
        theta,
        ...g.node("Mul", [...g.node("Div", [mHat, denominator]), "lr"]),
      ]);
      return { param, state: [m, v] };
    }
  }
}

/** Scales every gradient by min(1, maxNorm / |g|), |g| the global norm over all of them. */
export function emitClip(g: GraphBuilder, grads: string[], maxNorm: number): string[] {
  const squares = grads.map((x) =>
    g.node("ReduceSumSquare", [x], { attributes: { keepdims: { int: 0 } } })[0]
  );
  const [total] = g.node("Sqrt", g.node("Sum", squares));
  const [scale] = g.node("Min", [
    g.constant("clip.one", Float32Array.of(1), []),
    ...g.node("Div", [
      g.constant("clip.max", Float32Array.of(maxNorm), []),
      ...g.node("Add", [total, g.constant("clip.eps", Float32Array.of(1e-6), [])]),
    ]),
  ]);
  return grads.map((x) => g.node("Mul", [x, scale])[0]);
}
