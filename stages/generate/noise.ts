// The paper's "noised samples": y + r * U(unit ball) + s * N(0, I), where y is a real training
// image or, with k > 0, a random convex combination (Dirichlet(1) weights) of a training image and
// its k nearest training neighbours. This is what the paper argues a generative model trained on a
// small set effectively produces; as a generator stage it is the control arm for every comparison.

import { map } from "rxjs";
import { kNearest } from "../../core/nearest.ts";
import { Rng } from "../../core/rng.ts";
import { imageSize, makeBatch, sampleIds } from "../../core/batch.ts";
import type { Batch } from "../../core/batch.ts";
import { defineGenerator } from "../../core/stage.ts";

const params = {
  r: {
    type: "number",
    min: 0,
    default: 1,
    doc: "radius of the uniform-ball noise (L2, data scale)",
  },
  s: {
    type: "number",
    min: 0,
    default: 0.05,
    doc: "standard deviation of the Gaussian noise per value",
  },
  k: {
    type: "int",
    min: 0,
    default: 0,
    doc: "mix each anchor with its k nearest training neighbours (0 = off)",
  },
  clip: { type: "boolean", default: false, doc: "clip the result to the data range [0, 1]" },
} as const;

export const noise = defineGenerator({
  name: "noise",
  summary: "real image + uniform-ball noise + Gaussian noise, optionally mixed with k neighbours",
  provenance: "noised",
  params,
  create({ r, s, k, clip }, { seed, train }) {
    const d = imageSize(train.shape);
    // Neighbours of every training image, once: anchors are training images, so the table is
    // indexed by position in the training set.
    const neighbours = k > 0 ? kNearest(train.images, train.images, d, k, true).index : null;
    const position = new Map<number, number>();
    if (neighbours) train.ids.forEach((id, p) => position.set(id, p));
    let produced = 0;
    const direction = new Float64Array(d);
    const weights = new Float64Array(k + 1);
    return map((anchors: Batch): Batch => {
      const n = anchors.shape[0];
      const images = new Float32Array(n * d);
      const ids = sampleIds(anchors, produced);
      for (let j = 0; j < n; j++) {
        const sample = ids[j];
        const rng = new Rng(seed, "noise", sample);
        const out = images.subarray(j * d, (j + 1) * d);
        out.set(anchors.images.subarray(j * d, (j + 1) * d));
        if (neighbours) {
          const p = position.get(anchors.ids[j])!;
          let total = 0;
          // Slots past the training set's size (k >= N) hold -1 and take no weight.
          for (let m = 0; m <= k; m++) {
            weights[m] = m === 0 || neighbours[p * k + m - 1] >= 0 ? rng.exponential() : 0;
            total += weights[m];
          }
          for (let v = 0; v < d; v++) out[v] *= weights[0] / total;
          for (let m = 1; m <= k; m++) {
            const q = neighbours[p * k + m - 1];
            if (q < 0) continue;
            const w = weights[m] / total;
            for (let v = 0; v < d; v++) out[v] += w * train.images[q * d + v];
          }
        }
        // Uniform in the d-ball: a Gaussian direction, radius r * U^(1/d).
        let norm = 0;
        for (let v = 0; v < d; v++) norm += (direction[v] = rng.normal()) ** 2;
        const radius = r * Math.pow(rng.uniform(), 1 / d) / Math.sqrt(norm);
        for (let v = 0; v < d; v++) {
          const x = out[v] + radius * direction[v] + s * rng.normal();
          out[v] = clip ? Math.min(1, Math.max(0, x)) : x;
        }
      }
      produced += n;
      return makeBatch({
        images,
        shape: anchors.shape,
        labels: anchors.labels.slice(),
        ids,
        provenance: "noised",
        generator: "noise",
      });
    });
  },
});
