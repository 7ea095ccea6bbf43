import { FlowLearner } from "./stages/learn/flow.ts";
const imgs = new Float32Array(256 * 784).map(() => Math.random());
const f = await FlowLearner.create(imgs, [28, 28, 1], {
  preset: "tiny", batch: 64, lr: 2e-3, warmup: 20, steps: 200, ema: 0.999, clip: 1, target: "velocity",
  interpolant: { schedule: "linear", gamma: "none" }, efmExtra: 0, seed: 0,
});
for (let i = 0; i < 4; i++) {
  let t0 = performance.now();
  const p = f.stepPairs(i);
  const t1 = performance.now();
  await f.step();
  console.log("pairs", (t1 - t0).toFixed(0), "step", (performance.now() - t1).toFixed(0));
}
