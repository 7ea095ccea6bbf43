// The contrastive stage as the pipeline sees it: one batch in, one batch of views out, in the
// documented layout (view v of image i at row v n + i), with labels, ids, provenance and generator
// names carried to every view; each view a function of (seed, provenance, id, view) only, so the
// same image gives the same bytes in a batch of 1 and of 256, whatever its position; the registry
// entry, options, presets and errors.

import assert from "node:assert/strict";
import { from, lastValueFrom, toArray } from "rxjs";
import { Rng } from "../../../core/rng.ts";
import { makeBatch, Provenance } from "../../../core/batch.ts";
import type { Batch, Shape } from "../../../core/batch.ts";
import { SiaError } from "../../../core/errors.ts";
import { AUGMENTERS } from "../../../pipeline/registry.ts";
import { resolveSection } from "../../../core/schema.ts";
import { Augmenter, augmentViews, contrastive } from "../../../stages/augment/contrastive.ts";
import { PRESETS } from "../../../stages/augment/recipes.ts";
import type { Recipe } from "../../../stages/augment/recipes.ts";
import { emptyPlan } from "../../../stages/augment/render.ts";
import { emptyCrop, sampleView } from "../../../stages/augment/sample.ts";

/** n images of h x w x c on [0, 1]; provenance cycles real, generated, noised; ids 1000 + 7 i
 * (ids repeat across provenances: 3 images share each id pattern's neighbourhood). */
function mixedBatch(n: number, h: number, w: number, c: number, seed = 1): Batch {
  const rng = new Rng(seed, "augment-test", "batch");
  const shape: Shape = [n, h, w, c];
  const images = Float32Array.from({ length: n * h * w * c }, () => rng.uniform());
  const provenance = Uint8Array.from({ length: n }, (_, i) => i % 3);
  return makeBatch({
    images,
    shape,
    labels: Int32Array.from({ length: n }, (_, i) => (i % 11) - 1),
    ids: Int32Array.from({ length: n }, (_, i) => 1000 + 7 * i),
    provenance,
    generator: Array.from(provenance, (p) => ["", "closed-form", "noise"][p]),
  });
}

function slice(b: Batch, start: number, end: number): Batch {
  const d = b.shape[1] * b.shape[2] * b.shape[3];
  return makeBatch({
    images: b.images.slice(start * d, end * d),
    shape: [end - start, b.shape[1], b.shape[2], b.shape[3]],
    labels: b.labels.slice(start, end),
    ids: b.ids.slice(start, end),
    provenance: b.provenance.slice(start, end),
    generator: b.generator.slice(start, end),
  });
}

function run(params: Record<string, unknown>, batches: Batch[], seed = 0): Promise<Batch[]> {
  const resolved = resolveSection(contrastive.params, params, "augment.params.");
  return lastValueFrom(from(batches).pipe(contrastive.create(resolved, { seed }), toArray()));
}

/** The rows of view v from a list of output batches, in input order. */
function viewRows(outs: Batch[], v: number, views: number): Float32Array[] {
  const rows: Float32Array[] = [];
  for (const b of outs) {
    const n = b.shape[0] / views;
    const d = b.shape[1] * b.shape[2] * b.shape[3];
    for (let i = 0; i < n; i++) rows.push(b.images.slice((v * n + i) * d, (v * n + i + 1) * d));
  }
  return rows;
}

Deno.test("registry: the contrastive stage, its schema and a one-line summary", () => {
  assert.equal(AUGMENTERS.contrastive, contrastive);
  assert.equal(contrastive.name, "contrastive");
  assert.ok(!contrastive.summary.includes("\n"));
  for (
    const key of [
      "preset",
      "views",
      "size",
      "scaleMin",
      "scaleMax",
      "ratioMin",
      "ratioMax",
      "flipP",
      "brightness",
      "contrast",
      "saturation",
      "hue",
      "jitterP",
      "grayP",
      "blurP",
      "blurSigmaMin",
      "blurSigmaMax",
      "blurKernel",
      "mean",
      "std",
    ]
  ) assert.ok(key in contrastive.params, key);
});

for (const [h, w, c] of [[32, 32, 3], [28, 28, 1]]) {
  Deno.test(`layout ${h}x${w}x${c}: view v of image i at row v n + i, bookkeeping on every view`, async () => {
    const input = mixedBatch(12, h, w, c);
    const [out] = await run({ preset: "strong" }, [input], 5);
    const n = 12;
    assert.deepEqual(out.shape, [2 * n, h, w, c]);
    const d = h * w * c;
    const renderer = new Augmenter(PRESETS.strong, 5).renderer(h, w, c);
    const plan = emptyPlan(), crop = emptyCrop();
    const want = new Float32Array(d);
    for (let v = 0; v < 2; v++) {
      for (let i = 0; i < n; i++) {
        const row = v * n + i;
        assert.equal(out.ids[row], input.ids[i]);
        assert.equal(out.labels[row], input.labels[i]);
        assert.equal(out.provenance[row], input.provenance[i]);
        assert.equal(out.generator[row], input.generator[i]);
        // The view is exactly the documented stream's draw, rendered.
        const rng = new Rng(5, "augment", input.provenance[i], input.ids[i], v);
        sampleView(PRESETS.strong, rng, h, w, plan, crop);
        renderer.render(input.images, i * d, plan, want, 0);
        assert.deepEqual(out.images.subarray(row * d, (row + 1) * d), want, `row ${row}`);
      }
    }
    // On [0, 1] up to float32 rounding (a blur kernel normalised in float32, as torch's, can
    // sum to 1 + 2^-23).
    assert.ok(out.images.every((x) => x >= 0 && x <= 1 + 1e-6), "values stay on [0, 1]");
    // The two views of an image differ, and so do the views of different images.
    const rows = viewRows([out], 0, 2);
    const other = viewRows([out], 1, 2);
    for (let i = 0; i < n; i++) assert.notDeepEqual(rows[i], other[i]);
  });
}

Deno.test("same seed, provenance and id: the same view in a batch of 1 and of 256, any position", async () => {
  const big = mixedBatch(256, 32, 32, 3, 2);
  const [whole] = await run({ preset: "weak" }, [big], 3);
  const singles = await run(
    { preset: "weak" },
    Array.from({ length: 256 }, (_, i) => slice(big, i, i + 1)),
    3,
  );
  const uneven = await run({ preset: "weak" }, [slice(big, 0, 100), slice(big, 100, 256)], 3);
  // Reversed order: positions change, views must not.
  const reversed = makeBatch({
    images: (() => {
      const d = 32 * 32 * 3;
      const out = new Float32Array(big.images.length);
      for (let i = 0; i < 256; i++) out.set(big.images.subarray(i * d, (i + 1) * d), (255 - i) * d);
      return out;
    })(),
    shape: big.shape,
    labels: big.labels.slice().reverse(),
    ids: big.ids.slice().reverse(),
    provenance: big.provenance.slice().reverse(),
    generator: [...big.generator].reverse(),
  });
  const [back] = await run({ preset: "weak" }, [reversed], 3);
  for (let v = 0; v < 2; v++) {
    const a = viewRows([whole], v, 2);
    const b = viewRows(singles, v, 2);
    const c = viewRows(uneven, v, 2);
    const r = viewRows([back], v, 2).reverse();
    for (let i = 0; i < 256; i++) {
      assert.deepEqual(b[i], a[i], `view ${v} of image ${i}, batch of 1`);
      assert.deepEqual(c[i], a[i], `view ${v} of image ${i}, batches of 100 and 156`);
      assert.deepEqual(r[i], a[i], `view ${v} of image ${i}, reversed`);
    }
  }
});

Deno.test("the stream is keyed by seed, provenance and id", async () => {
  const base = mixedBatch(1, 32, 32, 3, 4);
  const with_ = (provenance: number, id: number) =>
    makeBatch({ ...base, provenance: Uint8Array.of(provenance), ids: Int32Array.of(id) });
  const view = async (b: Batch, seed = 0) => (await run({ preset: "strong" }, [b], seed))[0].images;
  const a = await view(with_(Provenance.real, 5));
  assert.deepEqual(await view(with_(Provenance.real, 5)), a);
  assert.notDeepEqual(await view(with_(Provenance.generated, 5)), a);
  assert.notDeepEqual(await view(with_(Provenance.noised, 5)), a);
  assert.notDeepEqual(await view(with_(Provenance.real, 6)), a);
  assert.notDeepEqual(await view(with_(Provenance.real, 5), 1), a);
});

Deno.test("N views (multi-crop), a new output size, and one batch out per batch in", async () => {
  const batches = [mixedBatch(5, 28, 28, 1, 1), mixedBatch(3, 28, 28, 1, 2)];
  const outs = await run({ preset: "weak", views: 4, size: 16 }, batches);
  assert.equal(outs.length, 2);
  assert.deepEqual(outs[0].shape, [20, 16, 16, 1]);
  assert.deepEqual(outs[1].shape, [12, 16, 16, 1]);
  for (let v = 0; v < 4; v++) {
    assert.deepEqual(outs[1].ids.subarray(v * 3, v * 3 + 3), batches[1].ids);
  }
  // The first two of four views are the two views of the default.
  const two = await run({ preset: "weak", size: 16 }, batches);
  assert.deepEqual(outs[0].images.subarray(0, 10 * 256), two[0].images);
  const one = await run({ preset: "weak", views: 1 }, batches);
  assert.deepEqual(one[0].shape, [5, 28, 28, 1]);
});

Deno.test("normalisation: (x - mean) / std per channel, one value for all channels", async () => {
  const input = mixedBatch(6, 32, 32, 3);
  const [plain] = await run({ preset: "strong" }, [input]);
  const mean = [0.4914, 0.4822, 0.4465], std = [0.247, 0.2435, 0.2616];
  const [norm] = await run({ preset: "strong", mean: mean.join(","), std: std.join(",") }, [input]);
  for (let k = 0; k < plain.images.length; k++) {
    const want = (plain.images[k] - mean[k % 3]) / std[k % 3];
    assert.ok(Math.abs(norm.images[k] - want) < 1e-5, `${k}`);
  }
  const [single] = await run({ preset: "strong", mean: "0.5", std: "0.25" }, [input]);
  for (let k = 0; k < plain.images.length; k += 97) {
    assert.ok(Math.abs(single.images[k] - (plain.images[k] - 0.5) / 0.25) < 1e-5);
  }
  await assert.rejects(
    () => run({ mean: "0.1,0.2", std: "1,1" }, [input]),
    /augment\.params\.mean: 2 values for 3-channel images/,
  );
});

Deno.test("options: presets fill unset fields, set fields win, bad values name their key", () => {
  const resolve = (p: Record<string, unknown>) =>
    resolveSection(contrastive.params, p, "augment.params.");
  assert.throws(
    () => resolve({ scalemin: 0.1 }),
    /augment\.params\.scalemin.*did you mean "augment\.params\.scaleMin"/,
  );
  assert.throws(() => resolve({ preset: "strng" }), /did you mean "strong"/);
  assert.throws(() => resolve({ flipP: 1.5 }), /augment\.params\.flipP/);
  assert.throws(() => resolve({ hue: 0.6 }), /augment\.params\.hue/);
  assert.throws(() => resolve({ views: 0 }), /augment\.params\.views/);
  const create = (p: Record<string, unknown>) => contrastive.create(resolve(p), { seed: 0 });
  assert.throws(() => create({ scaleMin: 0.9, scaleMax: 0.5 }), /augment\.params\.scaleMin/);
  assert.throws(
    () => create({ preset: "weak", scaleMax: 0.1 }),
    /scaleMin: 0.2 is above scaleMax 0.1/,
  );
  assert.throws(() => create({ blurSigmaMin: 3 }), /blurSigmaMin/);
  assert.throws(() => create({ blurKernel: 4 }), /blurKernel: expected an odd/);
  assert.throws(() => create({ mean: "0.5" }), /augment\.params\.std: mean and std go together/);
  assert.throws(() => create({ mean: "0.5", std: "0" }), /augment\.params\.std/);
  assert.throws(() => create({ mean: "a", std: "1" }), /augment\.params\.mean: expected/);
  try {
    create({ ratioMin: 2, ratioMax: 1 });
    assert.fail("no error");
  } catch (e) {
    assert.ok(e instanceof SiaError && e.exitCode === 2);
  }
});

Deno.test("a custom recipe object runs as the operator; a blur kernel too large is refused", async () => {
  const custom: Recipe = {
    ...PRESETS.weak,
    scaleMin: 1,
    ratioMin: 1,
    ratioMax: 1,
    flipP: 0,
    jitterP: 0,
    grayP: 0,
    blurP: 0,
  };
  const input = mixedBatch(4, 28, 28, 1);
  const [out] = await lastValueFrom(from([input]).pipe(augmentViews(custom, 0), toArray()));
  // Whole-image crops at the input size, nothing else: both views are the input.
  assert.deepEqual(out.images.subarray(0, input.images.length), input.images);
  assert.deepEqual(out.images.subarray(input.images.length), input.images);
  const blurry: Recipe = { ...PRESETS.strong, blurKernel: 57 };
  await assert.rejects(
    () => lastValueFrom(from([input]).pipe(augmentViews(blurry, 0), toArray())),
    /blurKernel: kernel 57 is too large for 28x28/,
  );
  await assert.rejects(
    () => lastValueFrom(from([mixedBatch(2, 8, 8, 2)]).pipe(augmentViews(PRESETS.weak, 0))),
    /2 channels/,
  );
});

Deno.test("grayscale inputs: saturation, hue and grayscale leave one channel alone", async () => {
  // With only saturation and hue jitter and grayscale always on, views are plain crops + flips.
  const input = mixedBatch(8, 28, 28, 1);
  const base = { preset: "weak", brightness: 0, contrast: 0, jitterP: 1, grayP: 1, blurP: 0 };
  const [jittered] = await run(base, [input]);
  const [plain] = await run({ ...base, saturation: 0, hue: 0 }, [input]);
  assert.deepEqual(jittered.images, plain.images);
});
