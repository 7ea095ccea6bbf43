// The contrastive recipes (../shared/spec/recipes.md) and the options schema that makes every one
// of their numbers a config field. A preset fills every field left unset (null); a custom recipe
// is a preset plus the fields it sets, e.g. { "preset": "weak", "scaleMin": 0.3 }.

import { keyError } from "../../core/errors.ts";
import type { Resolved } from "../../core/schema.ts";
import type { SamplingLaw } from "./sample.ts";

/** A complete recipe: the sampling law of a view plus what is fixed for the whole stage. */
export interface Recipe extends SamplingLaw {
  /** Views per image (2 for SimCLR / MoCo; more for multi-crop). */
  readonly views: number;
  /** Output side in pixels; 0 keeps the input's height and width. */
  readonly size: number;
  /** Odd blur kernel side; 0 picks about 10 % of the output side (autoBlurKernel). */
  readonly blurKernel: number;
  /** Per-channel normalisation (one value, or one per channel); empty for none. */
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

export const PRESET_NAMES = ["strong", "weak", "simclr-cifar"] as const;
export type PresetName = typeof PRESET_NAMES[number];

const COMMON = {
  views: 2,
  size: 0,
  ratioMin: 3 / 4,
  ratioMax: 4 / 3,
  flipP: 0.5,
  grayP: 0.2,
  blurSigmaMin: 0.1,
  blurSigmaMax: 2,
  blurKernel: 0,
  mean: [] as readonly number[],
  std: [] as readonly number[],
};

/** recipes.md's rows: `strong` is solo-learn's symmetric recipe (the arm `weak` is derived from),
 * `weak` is Wang et al. 2024, `simclr-cifar` the common SimCLR / MoCo CIFAR default. */
export const PRESETS: Readonly<Record<PresetName, Recipe>> = {
  strong: {
    ...COMMON,
    scaleMin: 0.08,
    scaleMax: 1,
    brightness: 0.8,
    contrast: 0.8,
    saturation: 0.8,
    hue: 0.2,
    jitterP: 0.8,
    blurP: 0.5,
  },
  weak: {
    ...COMMON,
    scaleMin: 0.2,
    scaleMax: 1,
    brightness: 0.4,
    contrast: 0.4,
    saturation: 0.4,
    hue: 0.1,
    jitterP: 0.4,
    blurP: 0.5,
  },
  "simclr-cifar": {
    ...COMMON,
    scaleMin: 0.08,
    scaleMax: 1,
    brightness: 0.4,
    contrast: 0.4,
    saturation: 0.4,
    hue: 0.1,
    jitterP: 0.8,
    blurP: 0,
  },
};

function presetDoc(key: Exclude<keyof Recipe, "mean" | "std">): string {
  const values = PRESET_NAMES.map((p) => Number(PRESETS[p][key].toFixed(4)));
  return values.every((v) => v === values[0])
    ? `(unset: ${values[0]} in every preset)`
    : `(unset: ${PRESET_NAMES.map((p, i) => `${p} ${values[i]}`).join(", ")})`;
}

const probability = (doc: string, key: "flipP" | "jitterP" | "grayP" | "blurP") =>
  ({ type: "number", min: 0, max: 1, default: null, doc: `${doc} ${presetDoc(key)}` }) as const;
const strength = (doc: string, key: "brightness" | "contrast" | "saturation") =>
  ({ type: "number", min: 0, default: null, doc: `${doc} ${presetDoc(key)}` }) as const;

export const AUGMENT_PARAMS = {
  preset: {
    type: "enum",
    values: PRESET_NAMES,
    default: "strong",
    doc: "recipe whose numbers fill every option left unset",
  },
  views: { type: "int", min: 1, default: 2, doc: "views per image (more than 2 for multi-crop)" },
  size: {
    type: "int",
    min: 0,
    default: 0,
    doc: "output side of every view (0 = the input's height and width)",
  },
  scaleMin: {
    type: "number",
    above: 0,
    max: 1,
    default: null,
    doc: `smallest crop area, as a fraction of the image ${presetDoc("scaleMin")}`,
  },
  scaleMax: {
    type: "number",
    above: 0,
    max: 1,
    default: null,
    doc: `largest crop area fraction ${presetDoc("scaleMax")}`,
  },
  ratioMin: {
    type: "number",
    above: 0,
    default: null,
    doc: `smallest crop aspect ratio w/h ${presetDoc("ratioMin")}`,
  },
  ratioMax: {
    type: "number",
    above: 0,
    default: null,
    doc: `largest crop aspect ratio w/h ${presetDoc("ratioMax")}`,
  },
  flipP: probability("probability of a horizontal flip", "flipP"),
  brightness: strength("brightness jitter: factor ~ U(max(0, 1 - x), 1 + x)", "brightness"),
  contrast: strength("contrast jitter: factor ~ U(max(0, 1 - x), 1 + x)", "contrast"),
  saturation: strength("saturation jitter: factor ~ U(max(0, 1 - x), 1 + x)", "saturation"),
  hue: {
    type: "number",
    min: 0,
    max: 0.5,
    default: null,
    doc: `hue jitter: shift ~ U(-x, x), in turns of the hue circle ${presetDoc("hue")}`,
  },
  jitterP: probability("probability of the colour jitter", "jitterP"),
  grayP: probability("probability of grayscale", "grayP"),
  blurP: probability("probability of a Gaussian blur", "blurP"),
  blurSigmaMin: {
    type: "number",
    above: 0,
    default: null,
    doc: `smallest blur sigma, pixels ${presetDoc("blurSigmaMin")}`,
  },
  blurSigmaMax: {
    type: "number",
    above: 0,
    default: null,
    doc: `largest blur sigma, pixels ${presetDoc("blurSigmaMax")}`,
  },
  blurKernel: {
    type: "int",
    min: 0,
    default: 0,
    doc: "odd blur kernel side (0 = about 10 % of the view's side, at least 3)",
  },
  mean: {
    type: "string",
    default: "",
    doc: 'normalisation means, comma-separated, one or one per channel ("" = no normalisation)',
  },
  std: {
    type: "string",
    default: "",
    doc: "normalisation standard deviations, as mean",
  },
} as const;

export type AugmentParams = Resolved<typeof AUGMENT_PARAMS>;

/** Dataset statistics for `mean` and `std`, for convenience in configs and docs. */
export const NORMALISATION = {
  cifar10: { mean: "0.4914,0.4822,0.4465", std: "0.2470,0.2435,0.2616" },
  mnist: { mean: "0.1307", std: "0.3081" },
  "fashion-mnist": { mean: "0.2860", std: "0.3530" },
} as const;

function parseList(key: string, text: string, positive: boolean): number[] {
  if (text.trim() === "") return [];
  const values = text.split(",").map((s) => s.trim());
  const numbers = values.map((s) =>
    /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s) ? Number(s) : NaN
  );
  if (numbers.some((v) => !Number.isFinite(v) || (positive && v <= 0))) {
    throw keyError(
      key,
      `expected comma-separated ${positive ? "positive " : ""}numbers, got ${JSON.stringify(text)}`,
    );
  }
  return numbers;
}

/** Fills unset options from the preset and checks what the schema can't (min <= max, odd
 * kernel, mean and std lists). `prefix` names the keys in errors ("augment.params."). */
export function resolveRecipe(params: AugmentParams, prefix = "augment.params."): Recipe {
  const preset = PRESETS[params.preset];
  const pick = <K extends keyof SamplingLaw>(key: K): number => {
    const value = (params as Record<string, unknown>)[key];
    return typeof value === "number" ? value : preset[key];
  };
  const recipe: Recipe = {
    views: params.views,
    size: params.size,
    scaleMin: pick("scaleMin"),
    scaleMax: pick("scaleMax"),
    ratioMin: pick("ratioMin"),
    ratioMax: pick("ratioMax"),
    flipP: pick("flipP"),
    brightness: pick("brightness"),
    contrast: pick("contrast"),
    saturation: pick("saturation"),
    hue: pick("hue"),
    jitterP: pick("jitterP"),
    grayP: pick("grayP"),
    blurP: pick("blurP"),
    blurSigmaMin: pick("blurSigmaMin"),
    blurSigmaMax: pick("blurSigmaMax"),
    blurKernel: params.blurKernel,
    mean: parseList(prefix + "mean", params.mean, false),
    std: parseList(prefix + "std", params.std, true),
  };
  checkRecipe(recipe, prefix);
  return recipe;
}

/** Throws a SiaError naming the key for a recipe that can't be sampled. */
export function checkRecipe(recipe: Recipe, prefix = "augment.params."): void {
  const pairs = [["scaleMin", "scaleMax"], ["ratioMin", "ratioMax"], [
    "blurSigmaMin",
    "blurSigmaMax",
  ]] as const;
  for (const [lo, hi] of pairs) {
    if (!(recipe[lo] <= recipe[hi])) {
      throw keyError(prefix + lo, `${recipe[lo]} is above ${hi} ${recipe[hi]}`);
    }
  }
  if (recipe.blurKernel !== 0 && recipe.blurKernel % 2 === 0) {
    throw keyError(prefix + "blurKernel", `expected an odd kernel side, got ${recipe.blurKernel}`);
  }
  if ((recipe.mean.length === 0) !== (recipe.std.length === 0)) {
    throw keyError(prefix + (recipe.mean.length ? "std" : "mean"), "mean and std go together");
  }
  if (recipe.std.some((s) => !(s > 0))) {
    throw keyError(prefix + "std", "every standard deviation must be positive");
  }
}
