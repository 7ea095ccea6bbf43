// An example of a user's own generator module, loaded by name where a generator goes:
//   deno task run generate --data mnist --generator ./examples/my_generator.ts --count 100 \
//     --seed 0 --out runs/mirror --set s=0.05
// or "generator": "./my_generator.ts" in a config (the path relative to the config file), or as an
// arm of Table 3: "generators": { "./my_generator.ts": { "s": 0.05 } }.
//
// The contract (core/stage.ts GeneratorModule): export `params`, the options schema (each key a
// core/schema.ts field: type, default, doc, and bounds or values), and `create`, which turns the
// resolved options and the context (seed, the real training set, report) into an RxJS operator
// mapping each batch of real anchor images to one batch of new images of the same shape.
// `summary` and `provenance` are optional. This one mirrors each anchor left to right and adds
// Gaussian noise of standard deviation s, keyed by (seed, sample id) so reruns give the same bytes.
//
// A module anywhere on disk may import "rxjs" too (sia's import map applies to every module it
// loads) and sia's types by path or URL.

import { map } from "rxjs";
import { imageSize, makeBatch, sampleIds } from "../core/batch.ts";
import type { Batch } from "../core/batch.ts";
import { Rng } from "../core/rng.ts";
import type { Section } from "../core/schema.ts";
import type { GeneratorFactory } from "../core/stage.ts";

export const summary = "the anchor mirrored left to right, plus Gaussian noise (an example module)";
export const provenance = "noised";

export const params = {
  s: { type: "number", min: 0, default: 0, doc: "standard deviation of the added noise" },
} as const satisfies Section;

export const create: GeneratorFactory<typeof params> = ({ s }, { seed }) => {
  let produced = 0;
  return map((anchors: Batch): Batch => {
    const [n, h, w, c] = anchors.shape;
    const d = imageSize(anchors.shape);
    const ids = sampleIds(anchors, produced);
    produced += n;
    const images = new Float32Array(n * d);
    for (let q = 0; q < n; q++) {
      const rng = new Rng(seed, "mirror", ids[q]);
      for (let row = 0; row < h; row++) {
        for (let col = 0; col < w; col++) {
          for (let ch = 0; ch < c; ch++) {
            const from = q * d + (row * w + (w - 1 - col)) * c + ch;
            const noise = s > 0 ? s * rng.normal() : 0;
            images[q * d + (row * w + col) * c + ch] = anchors.images[from] + noise;
          }
        }
      }
    }
    return makeBatch({
      images,
      shape: anchors.shape,
      labels: anchors.labels.slice(),
      ids,
      provenance: "noised",
      generator: "mirror",
    });
  });
};
