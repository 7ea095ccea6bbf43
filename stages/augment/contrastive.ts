// The contrastive augmentation stage: between the generator and the learners, each incoming image
// becomes `views` augmented views (two for SimCLR / MoCo / SimSiam / SwAV, more for multi-crop),
// drawn with the `strong`, `weak` or `simclr-cifar` recipe (recipes.ts) or a custom one, with
// torchvision's semantics op by op (render.ts) and its sampling laws (sample.ts).
//
// Output layout, for a batch of n images [n, H, W, C] and V views: images [V n, H', W', C] (H' =
// W' = size, or H and W when size is 0) where row v n + i is view v of input image i; labels,
// ids, provenance and generator are those of image i, repeated on every view (so the V views of
// one image share its id). The Batch type is unchanged: a learner takes view v as rows
// v n .. v n + n - 1, i.e. images.subarray(v n d, (v + 1) n d) with d = H' W' C.
//
// Randomness: view v of an image uses new Rng(seed, "augment", provenance, id, v), so a view
// depends only on (seed, provenance, id, v): never on batch boundaries, batch size or position.
// Data are expected on [0, 1]: the jitter ops clamp to [0, 1] as torchvision's do.

import { map } from "rxjs";
import type { OperatorFunction } from "rxjs";
import { Rng } from "../../core/rng.ts";
import { imageSize, makeBatch } from "../../core/batch.ts";
import type { Batch } from "../../core/batch.ts";
import { keyError, SiaError } from "../../core/errors.ts";
import { defineAugment } from "../../core/stage.ts";
import { AUGMENT_PARAMS, checkRecipe, resolveRecipe } from "./recipes.ts";
import type { Recipe } from "./recipes.ts";
import { autoBlurKernel, emptyPlan, ViewRenderer } from "./render.ts";
import { emptyCrop, sampleView } from "./sample.ts";

/** Turns batches into batches of views; keeps one renderer (tables, scratch) per input shape. */
export class Augmenter {
  readonly recipe: Recipe;
  readonly seed: number;
  readonly #prefix: string;
  #renderer: ViewRenderer | null = null;
  #key = "";
  readonly #plan = emptyPlan();
  readonly #crop = emptyCrop();

  constructor(recipe: Recipe, seed: number, prefix = "augment.params.") {
    checkRecipe(recipe, prefix);
    this.recipe = recipe;
    this.seed = seed;
    this.#prefix = prefix;
  }

  /** The renderer for an input of h x w x c (built on the first batch of each shape). */
  renderer(h: number, w: number, c: number): ViewRenderer {
    const key = `${h}x${w}x${c}`;
    if (this.#renderer && this.#key === key) return this.#renderer;
    const r = this.recipe;
    if (c !== 1 && c !== 3) {
      throw new SiaError(`augment: images have ${c} channels; the stage takes 1 (gray) or 3 (RGB)`);
    }
    const outHeight = r.size || h;
    const outWidth = r.size || w;
    const side = Math.min(outHeight, outWidth);
    const blurKernel = r.blurP > 0 ? r.blurKernel || autoBlurKernel(side) : 1;
    if ((blurKernel - 1) / 2 >= side) {
      throw keyError(
        this.#prefix + "blurKernel",
        `kernel ${blurKernel} is too large for ${outHeight}x${outWidth} views (reflect padding)`,
      );
    }
    const perChannel = (key: "mean" | "std"): number[] | null => {
      const v = r[key];
      if (v.length === 0) return null;
      if (v.length === 1) return new Array<number>(c).fill(v[0]);
      if (v.length === c) return [...v];
      throw keyError(this.#prefix + key, `${v.length} values for ${c}-channel images`);
    };
    this.#renderer = new ViewRenderer({
      inHeight: h,
      inWidth: w,
      channels: c,
      outHeight,
      outWidth,
      blurKernel,
      mean: perChannel("mean"),
      std: perChannel("std"),
    });
    this.#key = key;
    return this.#renderer;
  }

  apply(batch: Batch): Batch {
    const [n, h, w, c] = batch.shape;
    const renderer = this.renderer(h, w, c);
    const { outHeight, outWidth } = renderer.shape;
    const views = this.recipe.views;
    const inSize = imageSize(batch.shape);
    const outSize = outHeight * outWidth * c;
    const images = new Float32Array(views * n * outSize);
    const plan = this.#plan, crop = this.#crop;
    for (let v = 0; v < views; v++) {
      for (let i = 0; i < n; i++) {
        const rng = new Rng(this.seed, "augment", batch.provenance[i], batch.ids[i], v);
        sampleView(this.recipe, rng, h, w, plan, crop);
        renderer.render(batch.images, i * inSize, plan, images, (v * n + i) * outSize);
      }
    }
    const repeat = <T extends Int32Array | Uint8Array>(a: T, out: T): T => {
      for (let v = 0; v < views; v++) out.set(a, v * n);
      return out;
    };
    const generator: string[] = [];
    for (let v = 0; v < views; v++) for (const g of batch.generator) generator.push(g);
    return makeBatch({
      images,
      shape: [views * n, outHeight, outWidth, c],
      labels: repeat(batch.labels, new Int32Array(views * n)),
      ids: repeat(batch.ids, new Int32Array(views * n)),
      provenance: repeat(batch.provenance, new Uint8Array(views * n)),
      generator,
    });
  }
}

/** The operator for a recipe (a preset from PRESETS, or any custom Recipe object). */
export function augmentViews(recipe: Recipe, seed: number): OperatorFunction<Batch, Batch> {
  const augmenter = new Augmenter(recipe, seed);
  return map((batch: Batch) => augmenter.apply(batch));
}

export const contrastive = defineAugment({
  name: "contrastive",
  summary: "two (or N) views per image: random resized crop, flip, colour jitter, grayscale, " +
    "blur, normalise, with torchvision's semantics (presets strong, weak, simclr-cifar)",
  params: AUGMENT_PARAMS,
  create(params, { seed }) {
    return augmentViews(resolveRecipe(params), seed);
  },
});
