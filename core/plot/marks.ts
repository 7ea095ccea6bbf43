// The display list both back ends draw: the SVG writer (svg.ts) and the rasteriser (raster.ts)
// render the same marks, so the two files of a figure cannot drift apart. Units are SVG user
// units; the rasteriser multiplies them by its pixels per unit.

export interface RectMark {
  readonly kind: "rect";
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
  readonly fill?: string;
  readonly stroke?: string;
  readonly strokeWidth?: number;
}

export interface LineMark {
  readonly kind: "line";
  readonly x0: number;
  readonly y0: number;
  readonly x1: number;
  readonly y1: number;
  readonly width: number;
  readonly color: string;
}

export interface CircleMark {
  readonly kind: "circle";
  readonly cx: number;
  readonly cy: number;
  readonly r: number;
  /** Filled when fill is set; an outline when stroke is set (both allowed). */
  readonly fill?: string;
  readonly stroke?: string;
  readonly strokeWidth?: number;
  readonly opacity?: number;
}

export interface TextMark {
  readonly kind: "text";
  /** Anchor point; y is the baseline (for rotated text, x is). */
  readonly x: number;
  readonly y: number;
  readonly text: string;
  /** Font size in units. */
  readonly size: number;
  readonly color: string;
  readonly anchor: "start" | "middle" | "end";
  readonly bold?: boolean;
  /** Reads bottom to top (a y-axis label). */
  readonly up?: boolean;
}

export type Mark = RectMark | LineMark | CircleMark | TextMark;

export interface Drawing {
  readonly width: number;
  readonly height: number;
  readonly marks: readonly Mark[];
}
