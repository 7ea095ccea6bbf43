// The renderer against torchvision 0.14's functional ops (golden outputs made once by
// tests/fixtures/augment_golden.py): every op alone (crop + resize from several boxes, up and down,
// flip, brightness, contrast, saturation, hue at several shifts, grayscale, blur at two sigmas and
// two kernel sizes, normalise) and three compositions through the fused passes, on a 32x32x3 and a
// 28x28x1 image, to 1e-3 on [0, 1] data. Then the identities: flip twice, a whole-image crop at its
// own size, brightness 1.

import assert from "node:assert/strict";
import { decodeNpy, npyValues } from "../../../core/npy.ts";
import { Rng } from "../../../core/rng.ts";
import {
  autoBlurKernel,
  BRIGHTNESS,
  CONTRAST,
  emptyPlan,
  gaussianKernel,
  HUE,
  JITTER_NAMES,
  SATURATION,
  ViewRenderer,
} from "../../../stages/augment/render.ts";
import type { ViewPlan } from "../../../stages/augment/render.ts";

const DIR = new URL("../../fixtures/augment/", import.meta.url);
const TOLERANCE = 1e-3;

interface GoldenCase {
  name: string;
  input: "rgb" | "gray" | "wide";
  box: [number, number, number, number];
  size: [number, number];
  flip: boolean;
  jitter: [string, number][];
  gray: boolean;
  blur: [number, number] | null;
  normalize: { mean: number[]; std: number[] } | null;
  shape: [number, number, number];
  lo: number;
  hi: number;
  offset: number;
}

async function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new DecompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function image(name: string): Promise<{ values: Float32Array; shape: number[] }> {
  const array = decodeNpy(await Deno.readFile(new URL(`${name}.npy`, DIR)));
  assert.equal(array.descr, "|u1");
  return { values: Float32Array.from(npyValues(array), (v) => v / 255), shape: array.shape };
}

const golden = JSON.parse(await Deno.readTextFile(new URL("golden.json", DIR))) as {
  values: number;
  cases: GoldenCase[];
};
const outputs = npyValues(
  decodeNpy(await gunzip(await Deno.readFile(new URL("outputs.npy.gz", DIR)))),
);
const rgb = await image("rgb");
const inputs = {
  rgb,
  gray: await image("gray"),
  // rgb / 255 * 1.4 - 0.2 in float32, as the fixture script makes it: values outside [0, 1].
  wide: {
    values: rgb.values.map((v) =>
      Math.fround(Math.fround(v * Math.fround(1.4)) - Math.fround(0.2))
    ),
    shape: rgb.shape,
  },
};

function planOf(c: GoldenCase): ViewPlan {
  const plan = emptyPlan();
  [plan.top, plan.left, plan.height, plan.width] = c.box;
  plan.flip = c.flip;
  c.jitter.forEach(([op, factor], k) => {
    plan.jitterOps[k] = JITTER_NAMES.indexOf(op as typeof JITTER_NAMES[number]);
    assert.ok(plan.jitterOps[k] >= 0, op);
    plan.jitterFactors[k] = factor;
  });
  plan.jitterCount = c.jitter.length;
  plan.gray = c.gray;
  plan.blurSigma = c.blur ? c.blur[1] : 0;
  return plan;
}

function renderCase(c: GoldenCase): Float32Array {
  const { values, shape } = inputs[c.input];
  const renderer = new ViewRenderer({
    inHeight: shape[0],
    inWidth: shape[1],
    channels: shape[2],
    outHeight: c.size[0],
    outWidth: c.size[1],
    blurKernel: c.blur ? c.blur[0] : 1,
    mean: c.normalize?.mean ?? null,
    std: c.normalize?.std ?? null,
  });
  const out = new Float32Array(c.shape[0] * c.shape[1] * c.shape[2]).fill(NaN);
  renderer.render(values, 0, planOf(c), out, 0);
  return out;
}

Deno.test("golden fixtures: 42 cases of both shapes, made by torchvision 0.14", () => {
  assert.equal(golden.cases.length, 42);
  assert.equal(golden.values, outputs.length);
  assert.deepEqual(inputs.rgb.shape, [32, 32, 3]);
  assert.deepEqual(inputs.gray.shape, [28, 28, 1]);
  const names = golden.cases.map((c) => c.name).join(" | ");
  for (
    const op of [
      "crop up",
      "crop down",
      "flip",
      "hue -0.37",
      "blur k5 s1.9",
      "normalize",
      "wide hue",
    ]
  ) {
    assert.ok(names.includes(op), op);
  }
});

for (const c of golden.cases) {
  Deno.test(`torchvision golden: ${c.name}`, () => {
    const ours = renderCase(c);
    const step = (c.hi - c.lo) / 65535;
    let worst = 0;
    let at = -1;
    for (let i = 0; i < ours.length; i++) {
      const want = c.lo + outputs[c.offset + i] * step;
      const d = Math.abs(ours[i] - want);
      if (!(d <= worst)) [worst, at] = [d, i];
    }
    assert.ok(
      worst <= TOLERANCE,
      `${c.name}: max |sia - torchvision| = ${worst} at value ${at} (HWC index)`,
    );
  });
}

/** A random [0, 1] image (with exact 0 and 1 pixels) of h x w x c. */
function randomImage(h: number, w: number, c: number, seed: number): Float32Array {
  const rng = new Rng(seed, "augment-test", "image");
  return Float32Array.from({ length: h * w * c }, (_, i) => i % 17 === 0 ? i % 2 : rng.uniform());
}

function renderer(h: number, w: number, c: number, oh = h, ow = w): ViewRenderer {
  return new ViewRenderer({
    inHeight: h,
    inWidth: w,
    channels: c,
    outHeight: oh,
    outWidth: ow,
    blurKernel: 3,
    mean: null,
    std: null,
  });
}

function fullPlan(h: number, w: number): ViewPlan {
  const plan = emptyPlan();
  plan.height = h;
  plan.width = w;
  return plan;
}

for (const [h, w, c] of [[32, 32, 3], [28, 28, 1], [17, 23, 3]]) {
  Deno.test(`identities on ${h}x${w}x${c}: whole-image crop, flip twice, brightness 1`, () => {
    const x = randomImage(h, w, c, h + c);
    const r = renderer(h, w, c);
    const plan = fullPlan(h, w);
    const once = new Float32Array(x.length);
    r.render(x, 0, plan, once, 0);
    assert.deepEqual(once, x, "a crop of scale 1 and ratio 1 at the input's size");
    plan.flip = true;
    const flipped = new Float32Array(x.length);
    r.render(x, 0, plan, flipped, 0);
    assert.notDeepEqual(flipped, x);
    for (let y = 0; y < h; y++) {
      for (let k = 0; k < w; k++) {
        for (let j = 0; j < c; j++) {
          assert.equal(flipped[(y * w + k) * c + j], x[(y * w + (w - 1 - k)) * c + j]);
        }
      }
    }
    const twice = new Float32Array(x.length);
    r.render(flipped, 0, plan, twice, 0);
    assert.deepEqual(twice, x, "flip twice");
    const bright = fullPlan(h, w);
    bright.jitterOps[0] = BRIGHTNESS;
    bright.jitterFactors[0] = 1;
    bright.jitterCount = 1;
    const same = new Float32Array(x.length);
    r.render(x, 0, bright, same, 0);
    assert.deepEqual(same, x, "brightness factor 1");
  });
}

Deno.test("contrast 1, saturation 1 and hue 0 are identities to float rounding", () => {
  const x = randomImage(20, 20, 3, 7);
  const r = renderer(20, 20, 3);
  const plan = fullPlan(20, 20);
  [plan.jitterOps[0], plan.jitterOps[1], plan.jitterOps[2]] = [CONTRAST, SATURATION, HUE];
  [plan.jitterFactors[0], plan.jitterFactors[1], plan.jitterFactors[2]] = [1, 1, 0];
  plan.jitterCount = 3;
  const out = new Float32Array(x.length);
  r.render(x, 0, plan, out, 0);
  for (let i = 0; i < x.length; i++) assert.ok(Math.abs(out[i] - x[i]) < 1e-6, `${i}`);
});

Deno.test("views land at their offsets, and nothing outside them is written", () => {
  const x = randomImage(8, 8, 3, 3);
  const src = new Float32Array(x.length + 5).fill(-7);
  src.set(x, 5);
  const r = renderer(8, 8, 3, 4, 6);
  const plan = fullPlan(8, 8);
  plan.jitterOps[0] = SATURATION;
  plan.jitterFactors[0] = 0.5;
  plan.jitterCount = 1;
  plan.blurSigma = 0.8;
  const dst = new Float32Array(4 * 6 * 3 + 20).fill(99);
  r.render(src, 5, plan, dst, 10);
  assert.ok(dst.subarray(0, 10).every((v) => v === 99));
  assert.ok(dst.subarray(10 + 72).every((v) => v === 99));
  assert.ok(dst.subarray(10, 82).every((v) => v >= 0 && v <= 1));
});

Deno.test("bad crop boxes, channel counts and kernels are refused", () => {
  const r = renderer(8, 8, 1);
  const plan = fullPlan(8, 8);
  plan.top = 1;
  assert.throws(() => r.render(new Float32Array(64), 0, plan, new Float32Array(64), 0), /outside/);
  assert.throws(() => renderer(8, 8, 2), /channels/);
  assert.throws(
    () =>
      new ViewRenderer({
        inHeight: 8,
        inWidth: 8,
        channels: 1,
        outHeight: 2,
        outWidth: 8,
        blurKernel: 5,
        mean: null,
        std: null,
      }),
    /kernel/,
  );
});

Deno.test("Gaussian kernel: normalised, symmetric, peaked; auto size about 10 % of the side", () => {
  const k = new Float64Array(5);
  gaussianKernel(5, 1.3, k);
  assert.ok(Math.abs(k.reduce((a, b) => a + b) - 1) < 1e-6);
  assert.equal(k[0], k[4]);
  assert.equal(k[1], k[3]);
  assert.ok(k[2] > k[1] && k[1] > k[0]);
  assert.deepEqual([28, 32, 64, 96, 224].map(autoBlurKernel), [3, 3, 7, 9, 23]);
});
