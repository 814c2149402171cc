// Box outlines written straight into an RGBA pixel buffer. A software canvas strokes 2,000 rectangles
// in 20-140 ms (one path per colour is the slow case); writing the outline pixels takes a few ms, so
// a threshold slider can redraw every candidate within a frame.

/** CSS colour (#rrggbb or hsl(h, s%, l%)) as a little-endian RGBA word (0xAABBGGRR). */
export function packColor(css: string): number {
  let r = 0, g = 0, b = 0;
  const hex = /^#([0-9a-f]{6})$/i.exec(css);
  const hsl = /^hsl\(\s*([\d.]+)\s*,\s*([\d.]+)%\s*,\s*([\d.]+)%\s*\)$/i.exec(css);
  if (hex) {
    const v = parseInt(hex[1], 16);
    r = v >> 16;
    g = (v >> 8) & 255;
    b = v & 255;
  } else if (hsl) {
    [r, g, b] = hslToRgb(Number(hsl[1]), Number(hsl[2]) / 100, Number(hsl[3]) / 100);
  }
  return ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0;
}

export function hslToRgb(h: number, s: number, l: number): [number, number, number] {
  const k = (n: number) => (n + h / 30) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (n: number) => l - a * Math.max(-1, Math.min(k(n) - 3, Math.min(9 - k(n), 1)));
  return [Math.round(f(0) * 255), Math.round(f(8) * 255), Math.round(f(4) * 255)];
}

export interface Stroke {
  color: number;
  width: number;
  /** Mix 50/50 with what is below (rejected candidates). */
  half?: boolean;
  /** On/off run length in pixels (0 = solid). */
  dash?: number;
}

function put(px: Uint32Array, i: number, s: Stroke): void {
  if (s.half) {
    const p = px[i];
    px[i] = ((((p & 0xfefefe) >>> 1) + ((s.color & 0xfefefe) >>> 1)) | 0xff000000) >>> 0;
  } else {
    px[i] = s.color;
  }
}

/** Pixels [x0, x1) x [y0, y1) a stroke may write: the buffer, or a part of it being repainted. */
export interface Clip {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

function hline(px: Uint32Array, w: number, c: Clip, x1: number, x2: number, y: number, s: Stroke): void {
  if (y < c.y0 || y >= c.y1) return;
  const a = Math.max(c.x0, x1), b = Math.min(c.x1 - 1, x2);
  const row = y * w;
  if (!s.dash && !s.half) {
    if (a <= b) px.fill(s.color, row + a, row + b + 1); // native fill: most of a box's pixels
    return;
  }
  // The dash phase counts from the line's own start, so a clipped repaint draws the same pattern.
  for (let x = a; x <= b; x++) if (!s.dash || ((x - x1) / s.dash & 1) === 0) put(px, row + x, s);
}

function vline(px: Uint32Array, w: number, c: Clip, x: number, y1: number, y2: number, s: Stroke): void {
  if (x < c.x0 || x >= c.x1) return;
  const a = Math.max(c.y0, y1), b = Math.min(c.y1 - 1, y2);
  if (!s.dash && !s.half) {
    for (let i = a * w + x, end = b * w + x; i <= end; i += w) px[i] = s.color;
    return;
  }
  for (let y = a; y <= b; y++) if (!s.dash || ((y - y1) / s.dash & 1) === 0) put(px, y * w + x, s);
}

/** The pixel rectangle strokeRect may touch for (x1, y1)-(x2, y2), unclipped: [l, r) x [t, b). */
export function outlineBounds(x1: number, y1: number, x2: number, y2: number): Clip {
  return { x0: Math.round(Math.min(x1, x2)), y0: Math.round(Math.min(y1, y2)),
    x1: Math.round(Math.max(x1, x2)), y1: Math.round(Math.max(y1, y2)) };
}

/** Outline of the screen rectangle (x1, y1)-(x2, y2), `width` pixels thick, growing inwards; clipped to
 * the buffer, or to `clip` when given. */
export function strokeRect(px: Uint32Array, w: number, h: number, x1: number, y1: number, x2: number, y2: number,
  s: Stroke, clip?: Clip): void {
  const c = clip ?? { x0: 0, y0: 0, x1: w, y1: h };
  let l = Math.round(Math.min(x1, x2)), r = Math.round(Math.max(x1, x2)) - 1;
  let t = Math.round(Math.min(y1, y2)), b = Math.round(Math.max(y1, y2)) - 1;
  if (r < c.x0 || b < c.y0 || l >= c.x1 || t >= c.y1) return;
  for (let k = 0; k < s.width && l <= r && t <= b; k++) {
    hline(px, w, c, l, r, t, s);
    if (b !== t) hline(px, w, c, l, r, b, s);
    vline(px, w, c, l, t + 1, b - 1, s);
    if (r !== l) vline(px, w, c, r, t + 1, b - 1, s);
    l++; r--; t++; b--;
  }
}
