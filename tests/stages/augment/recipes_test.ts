// The presets carry ../shared/spec/recipes.md's numbers; `weak` differs from `strong` in exactly
// Wang et al.'s three knobs; every number is an option that a preset fills when it is unset.

import assert from "node:assert/strict";
import { describeSection, resolveSection } from "../../../core/schema.ts";
import {
  AUGMENT_PARAMS,
  NORMALISATION,
  PRESET_NAMES,
  PRESETS,
  resolveRecipe,
} from "../../../stages/augment/recipes.ts";

const resolve = (p: Record<string, unknown>) =>
  resolveRecipe(resolveSection(AUGMENT_PARAMS, p, "augment.params."));

Deno.test("presets: recipes.md's rows", () => {
  const row = (name: keyof typeof PRESETS) => {
    const r = PRESETS[name];
    return [
      r.scaleMin,
      r.scaleMax,
      r.flipP,
      r.brightness,
      r.contrast,
      r.saturation,
      r.hue,
      r.jitterP,
      r.grayP,
      r.blurP,
    ];
  };
  assert.deepEqual(row("simclr-cifar"), [0.08, 1, 0.5, 0.4, 0.4, 0.4, 0.1, 0.8, 0.2, 0]);
  assert.deepEqual(row("strong"), [0.08, 1, 0.5, 0.8, 0.8, 0.8, 0.2, 0.8, 0.2, 0.5]);
  assert.deepEqual(row("weak"), [0.2, 1, 0.5, 0.4, 0.4, 0.4, 0.1, 0.4, 0.2, 0.5]);
  for (const name of PRESET_NAMES) {
    const r = PRESETS[name];
    assert.deepEqual([r.ratioMin, r.ratioMax, r.blurSigmaMin, r.blurSigmaMax], [
      3 / 4,
      4 / 3,
      0.1,
      2,
    ]);
    assert.equal(r.views, 2);
  }
});

Deno.test("weak = strong with crop min-scale 0.2, jitter strength halved, jitter p 0.4", () => {
  const differ = Object.keys(PRESETS.strong).filter((k) =>
    JSON.stringify(PRESETS.strong[k as keyof typeof PRESETS.strong]) !==
      JSON.stringify(PRESETS.weak[k as keyof typeof PRESETS.weak])
  );
  assert.deepEqual(differ.sort(), [
    "brightness",
    "contrast",
    "hue",
    "jitterP",
    "saturation",
    "scaleMin",
  ]);
  for (const k of ["brightness", "contrast", "saturation", "hue"] as const) {
    assert.equal(PRESETS.weak[k], PRESETS.strong[k] / 2);
  }
});

Deno.test("options: unset fields come from the preset, set ones override", () => {
  assert.deepEqual(resolve({}), PRESETS.strong);
  assert.deepEqual(resolve({ preset: "weak" }), PRESETS.weak);
  assert.deepEqual(resolve({ preset: "simclr-cifar" }), PRESETS["simclr-cifar"]);
  const custom = resolve({ preset: "weak", scaleMin: 0.3, blurP: 0, views: 4, hue: 0 });
  assert.deepEqual(custom, { ...PRESETS.weak, scaleMin: 0.3, blurP: 0, views: 4, hue: 0 });
  const normalised = resolve({ ...NORMALISATION.cifar10 });
  assert.deepEqual(normalised.mean, [0.4914, 0.4822, 0.4465]);
  assert.deepEqual(normalised.std, [0.247, 0.2435, 0.2616]);
  assert.deepEqual(resolve({ mean: " 0.5 ", std: "2e-1" }).std, [0.2]);
});

Deno.test("help lines: every option with its preset values", () => {
  const lines = describeSection(AUGMENT_PARAMS, "augment.params.");
  assert.equal(lines.length, Object.keys(AUGMENT_PARAMS).length);
  const scale = lines.find((l) => l.includes("augment.params.scaleMin"))!;
  assert.match(scale, /strong 0\.08, weak 0\.2, simclr-cifar 0\.08/);
  const grayP = lines.find((l) => l.includes("augment.params.grayP"))!;
  assert.match(grayP, /0\.2 in every preset/);
});
