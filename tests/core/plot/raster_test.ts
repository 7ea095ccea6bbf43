// The rasteriser and its font: coverage-based shapes (areas, edges, blending), bitmap text, and
// marks drawn the same way as the SVG writer lays them out.

import assert from "node:assert/strict";
import { glyph, GLYPH_ADVANCE, GLYPH_HEIGHT, GLYPHS, textWidth } from "../../../core/plot/font.ts";
import { fontScale, parseColor, Raster, rasterize } from "../../../core/plot/raster.ts";

/** Sum over pixels of how far each moved from white towards black (in pixel units of area). */
function inkArea(r: Raster): number {
  let s = 0;
  for (let k = 0; k < r.data.length; k += 3) s += (255 - r.data[k]) / 255;
  return s;
}

Deno.test("parseColor reads #rrggbb and #rgb, rejects the rest", () => {
  assert.deepEqual(parseColor("#1f5fd6"), [0x1f, 0x5f, 0xd6]);
  assert.deepEqual(parseColor("#fff"), [255, 255, 255]);
  assert.throws(() => parseColor("red"));
  assert.throws(() => parseColor("#12345"));
});

Deno.test("a new raster is the background colour", () => {
  const r = new Raster(3, 2, "#102030");
  for (let j = 0; j < 2; j++) {
    for (let i = 0; i < 3; i++) assert.deepEqual(r.pixel(i, j), [16, 32, 48]);
  }
});

Deno.test("fillRect covers exactly its area, partial pixels by fraction", () => {
  const r = new Raster(10, 10);
  r.fillRect(2, 3, 4, 2, "#000000");
  assert.equal(inkArea(r), 8);
  assert.deepEqual(r.pixel(2, 3), [0, 0, 0]);
  assert.deepEqual(r.pixel(6, 3), [255, 255, 255]);
  const half = new Raster(4, 4);
  half.fillRect(1.5, 0, 1, 1, "#000000");
  assert.deepEqual(half.pixel(1, 0), [128, 128, 128]);
  assert.deepEqual(half.pixel(2, 0), [128, 128, 128]);
});

Deno.test("disc and ring ink their areas, with a solid centre and clean outside", () => {
  for (const radius of [3, 7.5, 20]) {
    const size = 2 * Math.ceil(radius) + 6;
    const r = new Raster(size, size);
    r.disc(size / 2, size / 2, radius, "#000000");
    const area = Math.PI * radius * radius;
    assert.ok(
      Math.abs(inkArea(r) - area) < 0.02 * area + 1,
      `disc r=${radius}: ${inkArea(r)} vs ${area}`,
    );
    assert.deepEqual(r.pixel(size / 2, size / 2), [0, 0, 0]);
    assert.deepEqual(r.pixel(0, 0), [255, 255, 255]);
  }
  const ring = new Raster(40, 40);
  ring.ring(20, 20, 10, 2, "#000000");
  const area = Math.PI * (11 * 11 - 9 * 9);
  assert.ok(Math.abs(inkArea(ring) - area) < 0.03 * area, `ring: ${inkArea(ring)} vs ${area}`);
  assert.deepEqual(ring.pixel(20, 20), [255, 255, 255], "a ring is hollow");
});

Deno.test("line inks length x width, including diagonals", () => {
  const h = new Raster(50, 20);
  h.line(5, 10, 45, 10, 2, "#000000");
  assert.ok(Math.abs(inkArea(h) - 80) < 1, `horizontal: ${inkArea(h)}`);
  const d = new Raster(60, 60);
  d.line(10, 10, 40, 50, 3, "#000000"); // length 50
  assert.ok(Math.abs(inkArea(d) - 150) < 3, `diagonal: ${inkArea(d)}`);
});

Deno.test("blending with opacity mixes towards the colour", () => {
  const r = new Raster(1, 1);
  r.blend(0, 0, [0, 0, 0], 0.25);
  assert.deepEqual(r.pixel(0, 0), [191, 191, 191]);
  r.blend(5, 5, [0, 0, 0], 1); // outside: ignored
});

Deno.test("font: every glyph has 8 rows of 5 columns and known shapes", () => {
  for (const ch of "AZaz09.,-+=()[]:;/<>^%*'_|~?!#\" ") {
    assert.ok(GLYPHS.has(ch), `missing glyph '${ch}'`);
    const rows = glyph(ch);
    assert.equal(rows.length, GLYPH_HEIGHT);
    for (const row of rows) assert.ok(row < 32);
  }
  assert.equal(glyph("A")[3], 0b11111, "A's crossbar");
  assert.equal(glyph("-")[3], 0b01110);
  assert.ok(glyph(" ").every((r) => r === 0));
  assert.ok(glyph("g")[7] !== 0 && glyph("A")[7] === 0, "only descenders use the last row");
  assert.equal(glyph("\u03b5")[0], 0b11111, "unknown characters draw a box");
  assert.equal(textWidth(""), 0);
  assert.equal(textWidth("ab"), 2 * GLYPH_ADVANCE - 1);
});

Deno.test("text draws glyph pixels as scale x scale blocks, anchored", () => {
  const r = new Raster(40, 20);
  const w = r.text(2, 10, "-", 2, "#000000");
  assert.equal(w, 10);
  // '-' is row 3, columns 1..3: at scale 2 a 6 x 2 block from x = 4, y = 10 - 14 + 6 = 2.
  assert.equal(inkArea(r), 12);
  assert.deepEqual(r.pixel(4, 2), [0, 0, 0]);
  assert.deepEqual(r.pixel(9, 3), [0, 0, 0]);
  assert.deepEqual(r.pixel(10, 3), [255, 255, 255]);
  const end = new Raster(40, 20);
  end.text(30, 10, "-", 2, "#000000", "end");
  assert.deepEqual(end.pixel(22, 2), [0, 0, 0]); // left edge 30 - 10 = 20, plus column 1
  const up = new Raster(20, 40);
  up.textUp(10, 20, "-", 2, "#000000");
  assert.equal(inkArea(up), 12, "rotated text keeps its ink");
});

Deno.test("rasterize scales marks by pixels per unit", () => {
  const drawing = {
    width: 20,
    height: 10,
    marks: [
      { kind: "rect" as const, x: 1, y: 1, w: 3, h: 2, fill: "#000000" },
      { kind: "circle" as const, cx: 15, cy: 5, r: 2, fill: "#000000" },
    ],
  };
  const r = rasterize(drawing, 2);
  assert.equal(r.width, 40);
  assert.equal(r.height, 20);
  const area = 3 * 2 * 4 + Math.PI * 16;
  assert.ok(Math.abs(inkArea(r) - area) < 0.03 * area, `${inkArea(r)} vs ${area}`);
  assert.equal(fontScale(10, 2), 2);
  assert.equal(fontScale(16, 2), 3);
});
