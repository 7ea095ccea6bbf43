// Marks to a standalone SVG document, written by hand.

import type { Drawing, Mark } from "./marks.ts";

const FONT = "DejaVu Sans, Helvetica, Arial, sans-serif";

/** Shortest decimal form with at most 2 decimals (pixel positions need no more). */
function n(v: number): string {
  return String(Math.round(v * 100) / 100);
}

export function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(
    /"/g,
    "&quot;",
  );
}

function paint(fill?: string, stroke?: string, strokeWidth?: number): string {
  return `fill="${fill ?? "none"}"` +
    (stroke ? ` stroke="${stroke}" stroke-width="${n(strokeWidth ?? 1)}"` : "");
}

function mark(m: Mark): string {
  switch (m.kind) {
    case "rect":
      return `<rect x="${n(m.x)}" y="${n(m.y)}" width="${n(m.w)}" height="${n(m.h)}" ${
        paint(m.fill, m.stroke, m.strokeWidth)
      }/>`;
    case "line":
      return `<line x1="${n(m.x0)}" y1="${n(m.y0)}" x2="${n(m.x1)}" y2="${
        n(m.y1)
      }" stroke="${m.color}" stroke-width="${n(m.width)}"/>`;
    case "circle":
      return `<circle cx="${n(m.cx)}" cy="${n(m.cy)}" r="${n(m.r)}" ${
        paint(m.fill, m.stroke, m.strokeWidth)
      }${m.opacity !== undefined && m.opacity < 1 ? ` opacity="${n(m.opacity)}"` : ""}/>`;
    case "text": {
      const rotate = m.up ? ` transform="rotate(-90 ${n(m.x)} ${n(m.y)})"` : "";
      return `<text x="${n(m.x)}" y="${n(m.y)}" font-size="${
        n(m.size)
      }" fill="${m.color}" text-anchor="${m.anchor}"${
        m.bold ? ' font-weight="bold"' : ""
      }${rotate}>${escapeXml(m.text)}</text>`;
    }
  }
}

export function toSvg(drawing: Drawing): string {
  const { width, height, marks } = drawing;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${n(width)}" height="${
      n(height)
    }" viewBox="0 0 ${n(width)} ${n(height)}" font-family="${FONT}">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    ...marks.map(mark),
    "</svg>",
    "",
  ].join("\n");
}
