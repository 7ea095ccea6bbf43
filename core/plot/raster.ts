// A small anti-aliased RGB rasteriser for plots: rectangles, discs, rings, lines and bitmap text.
// Shapes are drawn by coverage (signed distance, one pixel of ramp) blended over the canvas.
// Coordinates are in pixels, x to the right and y down, pixel (i, j) covering [i, i+1) x [j, j+1).

import {
  glyph,
  GLYPH_ADVANCE,
  GLYPH_ASCENT,
  GLYPH_HEIGHT,
  GLYPH_WIDTH,
  textWidth,
} from "./font.ts";
import type { Drawing } from "./marks.ts";
import type { RgbImage } from "./png.ts";

export type Rgb = readonly [number, number, number];

/** "#rrggbb" (or "#rgb") to an RGB triple. */
export function parseColor(color: string): Rgb {
  const hex = color.replace(/^#/, "");
  const full = hex.length === 3 ? [...hex].map((c) => c + c).join("") : hex;
  if (!/^[0-9a-fA-F]{6}$/.test(full)) throw new Error(`not a #rrggbb colour: ${color}`);
  const v = parseInt(full, 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

export type Anchor = "start" | "middle" | "end";

export class Raster implements RgbImage {
  readonly data: Uint8Array;
  constructor(readonly width: number, readonly height: number, background = "#ffffff") {
    this.data = new Uint8Array(width * height * 3);
    this.fillRect(0, 0, width, height, background);
  }

  /** Blends colour c into pixel (i, j) with opacity a in [0, 1]. */
  blend(i: number, j: number, c: Rgb, a: number): void {
    if (a <= 0 || i < 0 || j < 0 || i >= this.width || j >= this.height) return;
    const k = (j * this.width + i) * 3;
    const t = Math.min(1, a);
    for (let ch = 0; ch < 3; ch++) {
      this.data[k + ch] = Math.round(this.data[k + ch] * (1 - t) + c[ch] * t);
    }
  }

  pixel(i: number, j: number): Rgb {
    const k = (j * this.width + i) * 3;
    return [this.data[k], this.data[k + 1], this.data[k + 2]];
  }

  /** Axis-aligned rectangle with coverage-weighted edges. */
  fillRect(x: number, y: number, w: number, h: number, color: string, alpha = 1): void {
    const c = parseColor(color);
    const i0 = Math.max(0, Math.floor(x)), i1 = Math.min(this.width, Math.ceil(x + w));
    const j0 = Math.max(0, Math.floor(y)), j1 = Math.min(this.height, Math.ceil(y + h));
    for (let j = j0; j < j1; j++) {
      const cy = Math.min(j + 1, y + h) - Math.max(j, y);
      for (let i = i0; i < i1; i++) {
        const cx = Math.min(i + 1, x + w) - Math.max(i, x);
        this.blend(i, j, c, alpha * cx * cy);
      }
    }
  }

  /** Shades every pixel whose centre lies within `pad` of the box by coverage(signed distance). */
  #shade(
    x0: number,
    y0: number,
    x1: number,
    y1: number,
    color: string,
    alpha: number,
    distance: (px: number, py: number) => number,
  ): void {
    const c = parseColor(color);
    const i0 = Math.max(0, Math.floor(x0 - 1)), i1 = Math.min(this.width, Math.ceil(x1 + 1));
    const j0 = Math.max(0, Math.floor(y0 - 1)), j1 = Math.min(this.height, Math.ceil(y1 + 1));
    for (let j = j0; j < j1; j++) {
      for (let i = i0; i < i1; i++) {
        // Negative inside; a one-pixel ramp centred on the edge approximates area coverage.
        const d = distance(i + 0.5, j + 0.5);
        const cover = Math.max(0, Math.min(1, 0.5 - d));
        if (cover > 0) this.blend(i, j, c, alpha * cover);
      }
    }
  }

  /** Filled disc of radius r. */
  disc(cx: number, cy: number, r: number, color: string, alpha = 1): void {
    this.#shade(
      cx - r,
      cy - r,
      cx + r,
      cy + r,
      color,
      alpha,
      (px, py) => Math.hypot(px - cx, py - cy) - r,
    );
  }

  /** Circle outline of radius r and stroke width w (centred on the radius). */
  ring(cx: number, cy: number, r: number, w: number, color: string, alpha = 1): void {
    const o = r + w / 2;
    this.#shade(
      cx - o,
      cy - o,
      cx + o,
      cy + o,
      color,
      alpha,
      (px, py) => Math.abs(Math.hypot(px - cx, py - cy) - r) - w / 2,
    );
  }

  /** Straight segment of width w with flat ends. */
  line(x0: number, y0: number, x1: number, y1: number, w: number, color: string, alpha = 1): void {
    const dx = x1 - x0, dy = y1 - y0;
    const len2 = dx * dx + dy * dy;
    this.#shade(
      Math.min(x0, x1) - w,
      Math.min(y0, y1) - w,
      Math.max(x0, x1) + w,
      Math.max(y0, y1) + w,
      color,
      alpha,
      (px, py) => {
        const s = len2 === 0 ? 0 : ((px - x0) * dx + (py - y0) * dy) / len2;
        // Signed distances across the segment and along it (flat caps); inside, both < 0.
        const across = Math.hypot(px - (x0 + s * dx), py - (y0 + s * dy)) - w / 2;
        const beyond = Math.max(-s, s - 1) * Math.sqrt(len2);
        return Math.max(across, beyond);
      },
    );
  }

  /**
   * Bitmap text with its baseline at y; each glyph pixel is a scale x scale block. Returns the
   * drawn width in pixels.
   */
  text(
    x: number,
    y: number,
    text: string,
    scale: number,
    color: string,
    anchor: Anchor = "start",
  ): number {
    const c = parseColor(color);
    const width = textWidth(text) * scale;
    const left = Math.round(
      anchor === "start" ? x : anchor === "middle" ? x - width / 2 : x - width,
    );
    const top = Math.round(y) - GLYPH_ASCENT * scale;
    this.#glyphCells(text, scale, c, (g, col, r) => [
      left + g * GLYPH_ADVANCE * scale + col * scale,
      top + r * scale,
    ]);
    return width;
  }

  /** Bitmap text rotated a quarter turn counter-clockwise (for y-axis labels), centred at (x, y). */
  textUp(x: number, y: number, text: string, scale: number, color: string): void {
    const c = parseColor(color);
    const width = textWidth(text) * scale;
    // Reading bottom to top: glyph column col runs up from the bottom, row r runs right.
    const bottom = Math.round(y + width / 2);
    const left = Math.round(x) - GLYPH_ASCENT * scale;
    this.#glyphCells(text, scale, c, (g, col, r) => [
      left + r * scale,
      bottom - g * GLYPH_ADVANCE * scale - (col + 1) * scale,
    ]);
  }

  /** Fills a scale x scale block for every lit cell (column col, row r) of glyph g of `text`, at
   * the top-left corner `at` gives: the one glyph walk behind upright and rotated text. */
  #glyphCells(
    text: string,
    scale: number,
    c: Rgb,
    at: (g: number, col: number, r: number) => [number, number],
  ): void {
    let g = 0;
    for (const ch of text) {
      const rows = glyph(ch);
      for (let r = 0; r < GLYPH_HEIGHT; r++) {
        for (let col = 0; col < GLYPH_WIDTH; col++) {
          if (!(rows[r] & (1 << (4 - col)))) continue;
          const [x0, y0] = at(g, col, r);
          for (let v = 0; v < scale; v++) {
            for (let u = 0; u < scale; u++) this.blend(x0 + u, y0 + v, c, 1);
          }
        }
      }
      g++;
    }
  }
}

/**
 * Bitmap font scale for a font size in units at `pxPerUnit`: the advance matches a sans-serif
 * font's average character width (about 0.55 em), so text takes the same room in SVG and PNG.
 */
export function fontScale(size: number, pxPerUnit: number): number {
  return Math.max(1, Math.round((0.55 * size * pxPerUnit) / GLYPH_ADVANCE));
}

/** Renders a display list at `pxPerUnit` pixels per unit. */
export function rasterize(drawing: Drawing, pxPerUnit = 2): Raster {
  const k = pxPerUnit;
  const raster = new Raster(Math.ceil(drawing.width * k), Math.ceil(drawing.height * k));
  for (const m of drawing.marks) {
    switch (m.kind) {
      case "rect":
        if (m.fill) raster.fillRect(m.x * k, m.y * k, m.w * k, m.h * k, m.fill);
        if (m.stroke) {
          const w = (m.strokeWidth ?? 1) * k;
          const [x0, y0, x1, y1] = [m.x * k, m.y * k, (m.x + m.w) * k, (m.y + m.h) * k];
          raster.fillRect(x0 - w / 2, y0 - w / 2, x1 - x0 + w, w, m.stroke);
          raster.fillRect(x0 - w / 2, y1 - w / 2, x1 - x0 + w, w, m.stroke);
          raster.fillRect(x0 - w / 2, y0 + w / 2, w, y1 - y0 - w, m.stroke);
          raster.fillRect(x1 - w / 2, y0 + w / 2, w, y1 - y0 - w, m.stroke);
        }
        break;
      case "line":
        raster.line(m.x0 * k, m.y0 * k, m.x1 * k, m.y1 * k, m.width * k, m.color);
        break;
      case "circle":
        if (m.fill) raster.disc(m.cx * k, m.cy * k, m.r * k, m.fill, m.opacity ?? 1);
        if (m.stroke) {
          raster.ring(
            m.cx * k,
            m.cy * k,
            m.r * k,
            (m.strokeWidth ?? 1) * k,
            m.stroke,
            m.opacity ?? 1,
          );
        }
        break;
      case "text": {
        const scale = fontScale(m.size, k);
        for (const dx of m.bold ? [0, 1] : [0]) {
          if (m.up) raster.textUp(m.x * k, m.y * k + dx, m.text, scale, m.color);
          else raster.text(m.x * k + dx, m.y * k, m.text, scale, m.color, m.anchor);
        }
        break;
      }
    }
  }
  return raster;
}
