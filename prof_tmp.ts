import * as ort from "onnxruntime-node";
import { trainStep } from "./stages/learn/graph/train_step.ts";
import { UNET_PRESETS, velocityUnet } from "./stages/learn/blocks/model.ts";
import { initParams } from "./stages/learn/blocks/init.ts";
const B = 64;
const graph = trainStep({ blocks: velocityUnet(1, UNET_PRESETS.tiny), input: [28, 28, 1], batch: B, loss: { kind: "mse" }, optimizer: { kind: "adam", beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, clip: 1 });
const s = await ort.InferenceSession.create(graph.model, { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: "all", executionMode: "sequential", enableProfiling: true, profileFilePrefix: "/tmp/prof" });
const feeds: Record<string, ort.Tensor> = {};
const vals = initParams(graph.params, 0);
for (const p of graph.params) feeds[p.name] = new ort.Tensor("float32", vals.get(p.name)!, [...p.shape]);
for (const st of graph.state) feeds[st.name] = new ort.Tensor("float32", new Float32Array(st.shape.reduce((a, b) => a * b, 1)), [...st.shape]);
for (const sc of graph.scalars) feeds[sc] = new ort.Tensor("float32", Float32Array.of(0.5), []);
feeds.x = new ort.Tensor("float32", new Float32Array(B * 784).map(() => Math.random()), [B, 28, 28, 1]);
for (const i of graph.inputs) feeds[i.name] = new ort.Tensor("float32", new Float32Array(i.shape.reduce((a, b) => a * b, 1)).map(() => Math.random()), [...i.shape]);
for (let i = 0; i < 4; i++) { const t0 = performance.now(); await s.run(feeds); console.log(performance.now() - t0); }
s.endProfiling();
