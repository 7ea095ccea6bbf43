// makeBatch: per-image arrays must agree with the shape; provenance and generator given as one
// name fill every image.

import assert from "node:assert/strict";
import { imageSize, makeBatch, Provenance, PROVENANCE_NAMES } from "../../core/batch.ts";
import { GENERATORS } from "../../pipeline/registry.ts";

Deno.test("imageSize is height * width * channels", () => {
  assert.equal(imageSize([7, 28, 28, 1]), 784);
  assert.equal(imageSize([0, 32, 32, 3]), 3072);
});

Deno.test("PROVENANCE_NAMES indexes Provenance codes", () => {
  PROVENANCE_NAMES.forEach((name, code) => assert.equal(Provenance[name], code));
  assert.equal(PROVENANCE_NAMES.length, Object.keys(Provenance).length);
});

Deno.test("makeBatch fills provenance and generator from single names", () => {
  const b = makeBatch({
    images: new Float32Array(2 * 6),
    shape: [2, 1, 3, 2],
    labels: Int32Array.of(4, -1),
    ids: Int32Array.of(10, 11),
    provenance: "generated",
    generator: "ddpm",
  });
  assert.deepEqual(b.provenance, Uint8Array.of(Provenance.generated, Provenance.generated));
  assert.deepEqual(b.generator, ["ddpm", "ddpm"]);
  const real = makeBatch({
    images: new Float32Array(1),
    shape: [1, 1, 1, 1],
    labels: Int32Array.of(0),
    ids: Int32Array.of(0),
    provenance: "real",
  });
  assert.deepEqual(real.generator, [""]);
  assert.deepEqual(real.provenance, Uint8Array.of(0));
});

Deno.test("makeBatch rejects arrays that disagree with the shape", () => {
  const ok = {
    images: new Float32Array(2 * 4),
    shape: [2, 2, 2, 1] as const,
    labels: new Int32Array(2),
    ids: new Int32Array(2),
    provenance: "real" as const,
  };
  assert.doesNotThrow(() => makeBatch(ok));
  assert.throws(() => makeBatch({ ...ok, images: new Float32Array(7) }), /7 values for shape/);
  assert.throws(() => makeBatch({ ...ok, labels: new Int32Array(3) }), /3 labels, 2 ids/);
  assert.throws(() => makeBatch({ ...ok, ids: new Int32Array(1) }), /2 labels, 1 ids/);
  assert.throws(() => makeBatch({ ...ok, provenance: new Uint8Array(1) }), /provenance/);
  assert.throws(() => makeBatch({ ...ok, generator: ["a"] }), /generator/);
});

Deno.test("the registry maps each generator's name to itself", () => {
  assert.ok(Object.keys(GENERATORS).includes("noise"));
  for (const [name, stage] of Object.entries(GENERATORS)) {
    assert.equal(stage.name, name);
    assert.ok(stage.summary.length > 0);
    for (const field of Object.values(stage.params)) assert.ok(field.doc.length > 0);
  }
});
