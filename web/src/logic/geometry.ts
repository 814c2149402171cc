// The image view: image pixels -> screen pixels is `screen = image * scale + offset`.
export interface View {
  scale: number;
  ox: number;
  oy: number;
}

export interface Rect {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

export const MIN_SCALE = 0.02;
export const MAX_SCALE = 40;

/** The view that fits the whole image in the viewport, centred. */
export function fitView(imgW: number, imgH: number, viewW: number, viewH: number): View {
  if (imgW <= 0 || imgH <= 0 || viewW <= 0 || viewH <= 0) return { scale: 1, ox: 0, oy: 0 };
  const scale = Math.min(viewW / imgW, viewH / imgH);
  return { scale, ox: (viewW - imgW * scale) / 2, oy: (viewH - imgH * scale) / 2 };
}

export function toScreen(v: View, x: number, y: number): [number, number] {
  return [x * v.scale + v.ox, y * v.scale + v.oy];
}

export function toImage(v: View, sx: number, sy: number): [number, number] {
  return [(sx - v.ox) / v.scale, (sy - v.oy) / v.scale];
}

export function rectToScreen(v: View, r: Rect): Rect {
  const [x1, y1] = toScreen(v, r.x1, r.y1);
  const [x2, y2] = toScreen(v, r.x2, r.y2);
  return { x1, y1, x2, y2 };
}

/** Zoom by `factor` keeping the image point under (sx, sy) fixed on screen. */
export function zoomAt(v: View, sx: number, sy: number, factor: number): View {
  const scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, v.scale * factor));
  const [ix, iy] = toImage(v, sx, sy);
  return { scale, ox: sx - ix * scale, oy: sy - iy * scale };
}

export function pan(v: View, dx: number, dy: number): View {
  return { scale: v.scale, ox: v.ox + dx, oy: v.oy + dy };
}

/** Index of the smallest box containing the image point, or -1: the innermost box wins a click. */
export function hitTest(boxes: readonly Rect[], x: number, y: number, visible?: (i: number) => boolean): number {
  let best = -1;
  let bestArea = Infinity;
  for (let i = 0; i < boxes.length; i++) {
    const b = boxes[i];
    if (x < b.x1 || x > b.x2 || y < b.y1 || y > b.y2) continue;
    if (visible && !visible(i)) continue;
    const area = (b.x2 - b.x1) * (b.y2 - b.y1);
    if (area < bestArea) {
      best = i;
      bestArea = area;
    }
  }
  return best;
}
