// Real PyTorch clients of the flow contract (tests/fixtures/flow/, made by make_torch_flow.py with
// torch 1.13 and torch.onnx.export, opset 17): sia loads each model through its flow.json, feeds
// the recorded states at the recorded times through its own layout and time conventions, and
// must get PyTorch's outputs to 1e-5, and the denoiser numpy computed from them by the schedule's
// formulas. One model is NCHW velocity on the linear schedule; the other NHWC noise on vp, with
// DDPM's time (1000 (1 - t)) fed as a scalar, so every conversion path is exercised.

import assert from "node:assert/strict";
import { decodeNpy, npyValues } from "../../../core/npy.ts";
import { createSession } from "../../../core/onnx.ts";
import { loadFlow, networkField } from "../../../stages/generate/onnx_flow.ts";
import { interpolant } from "../../../stages/generate/interpolant/schedule.ts";

const DIR = new URL("../../fixtures/flow/", import.meta.url).pathname;

function npy(name: string): Float64Array {
  return Float64Array.from(npyValues(decodeNpy(Deno.readFileSync(`${DIR}${name}.npy`))));
}

for (const name of ["velocity", "noise"]) {
  Deno.test(`PyTorch fixture ${name}.onnx: sia's outputs match PyTorch's to 1e-5`, async () => {
    const json = JSON.parse(Deno.readTextFileSync(`${DIR}${name}.json`));
    const [channels, height, width] = json.shape;
    const flow = loadFlow(`${DIR}${name}.onnx`, "", {}, [1, height, width, channels]);
    const { contract } = flow;
    const plane = height * width;
    const D = channels * plane;
    const session = await createSession(flow.bytes, 1);
    try {
      const field = networkField(session, flow, `${name}.onnx`, null);
      const interp = interpolant({ schedule: contract.schedule, gamma: "none" });
      const states = npy(`${name}_inputs`);
      const times = npy(`${name}_times`);
      const outputs = npy(`${name}_outputs`);
      const denoiser = npy(`${name}_denoiser`);
      const nchw = contract.layout === "nchw";
      // A velocity in a model whose time runs from the data (dataAt 0) changes sign in sia's.
      const sign = contract.prediction === "velocity" && contract.time.dataAt === 0 ? -1 : 1;
      let worstOut = 0;
      let worstM = 0;
      for (let k = 0; k < times.length; k++) {
        const c = interp.at(times[k]);
        const x = states.slice(k * D, (k + 1) * D);
        const predicted = await field.predict(c, x, 1);
        const { my } = await field.evaluate(c, x, 1);
        for (let v = 0; v < D; v++) {
          // v is sia's NHWC index; PyTorch's outputs are in the model's layout.
          const [p, ch] = [Math.floor(v / channels), v % channels];
          const expected = sign * outputs[k * D + (nchw ? ch * plane + p : v)];
          worstOut = Math.max(worstOut, Math.abs(predicted[v] - expected));
          // m amplifies the output's float32 rounding by alpha / beta (noise) or alpha (velocity).
          const scale = contract.prediction === "noise" ? c.alpha / c.beta : 1;
          worstM = Math.max(worstM, Math.abs(my[v] - denoiser[k * D + v]) / scale);
        }
      }
      assert.ok(worstOut < 1e-5, `${name}: max |sia - PyTorch| = ${worstOut}`);
      assert.ok(worstM < 1e-5, `${name}: max |denoiser - numpy's| (scaled) = ${worstM}`);
    } finally {
      await session.release();
    }
  });
}
