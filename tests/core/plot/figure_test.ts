// Figure layout: ticks and their labels, points off the window pinned to its edge along their
// direction, and the SVG holding one mark per point.

import assert from "node:assert/strict";
import { formatTick, layout, niceTicks } from "../../../core/plot/figure.ts";
import type { Figure } from "../../../core/plot/figure.ts";
import type { CircleMark } from "../../../core/plot/marks.ts";
import { escapeXml, toSvg } from "../../../core/plot/svg.ts";

Deno.test("niceTicks: round steps covering the range", () => {
  assert.deepEqual(niceTicks(-3, 3), [-3, -2, -1, 0, 1, 2, 3]);
  assert.deepEqual(niceTicks(-20, 20), [-20, -10, 0, 10, 20]);
  assert.deepEqual(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6000000000000001, 0.8, 1]);
  assert.deepEqual(niceTicks(2, 2), [2]);
});

Deno.test("formatTick: decimals from the step, exponents for extremes", () => {
  assert.equal(formatTick(0, 1), "0");
  assert.equal(formatTick(-2, 1), "-2");
  assert.equal(formatTick(0.6000000000000001, 0.2), "0.6");
  assert.equal(formatTick(2.5, 0.5), "2.5");
  assert.equal(formatTick(2e31, 1e31), "2e31");
  assert.equal(formatTick(5e-5, 5e-5), "5e-5");
});

const fig: Figure = {
  title: 't <&> "q"',
  panels: [{
    title: "p",
    xlim: [-1, 1],
    ylim: [-1, 1],
    notes: ["n1", "n2"],
    series: [
      { name: "a", xy: Float64Array.of(0, 0, 0.5, -0.5), color: "#0000ff", radius: 4 },
      { name: "b", xy: Float64Array.of(10, 5, -1e30, 0, NaN, 0), color: "#ff0000", radius: 2 },
    ],
  }],
};

Deno.test("layout pins off-window points to the edge along their direction", () => {
  const { marks } = layout(fig);
  const red = marks.filter((m): m is CircleMark => m.kind === "circle" && m.stroke === "#ff0000");
  assert.equal(red.length, 2, "two points off the window; NaN is skipped");
  const frame = marks.find((m) => m.kind === "rect" && m.stroke)!;
  assert.equal(frame.kind, "rect");
  if (frame.kind !== "rect") return;
  const [cx, cy] = [frame.x + frame.w / 2, frame.y + frame.h / 2];
  // (10, 5) leaves through the right edge at y = 0.5; (-1e30, 0) through the left edge at y = 0.
  assert.ok(Math.abs(red[0].cx - (frame.x + frame.w)) < 1e-9);
  assert.ok(Math.abs(red[0].cy - (cy - frame.h / 4)) < 1e-9);
  assert.ok(Math.abs(red[1].cx - frame.x) < 1e-9);
  assert.ok(Math.abs(red[1].cy - cy) < 1e-9);
  assert.ok(cx > frame.x);
  const blue = marks.filter((m) => m.kind === "circle" && m.fill === "#0000ff");
  assert.equal(blue.length, 3, "two points and the legend swatch");
});

Deno.test("toSvg writes one element per mark, escaped text", () => {
  const drawing = layout(fig);
  const svg = toSvg(drawing);
  assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
  assert.ok(svg.trimEnd().endsWith("</svg>"));
  assert.equal(
    (svg.match(/<circle /g) ?? []).length,
    drawing.marks.filter((m) => m.kind === "circle").length,
  );
  assert.equal(
    (svg.match(/<text /g) ?? []).length,
    drawing.marks.filter((m) => m.kind === "text").length,
  );
  assert.ok(svg.includes("t &lt;&amp;&gt; &quot;q&quot;"));
  assert.equal(escapeXml("a<b"), "a&lt;b");
});
