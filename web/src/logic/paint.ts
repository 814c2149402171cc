// The box layer of the image viewer as a pixel frame: the image's pixels (the base) with every outline
// stroked over them in drawing order. Moving a threshold slider only changes the style of the few
// candidates whose probability the threshold crossed, so the frame is repainted just inside their
// rectangles: the base copied back there and every outline touching the rectangle stroked again, clipped,
// in the same order. Every pixel of a repainted rectangle goes through the same operations as in a full
// paint, so the frame is the same bit for bit, and a slider move costs a few small rectangles instead of
// a copy of the whole frame and 2,000 outlines (which, on a loaded machine, is what pushed redraws past a
// frame: the longer a redraw's CPU work, the likelier the renderer is preempted in the middle of it).
import { type Clip, outlineBounds, type Stroke, strokeRect } from "./raster";

/** Stroke of outline i, or null when it is not drawn (hidden source, ground truth off, no selection). */
export type StyleOf = (i: number) => Stroke | null;

/** Past this share of the outlines changed, one full paint is cheaper than many small ones. */
const FULL_SHARE = 0.125;

export class OutlinePainter {
  readonly px: Uint32Array;
  private base: Uint32Array;
  private full: Clip;
  private n = 0;
  private xy: Float64Array<ArrayBufferLike> = new Float64Array(0);
  private bounds = new Int32Array(0);

  constructor(readonly w: number, readonly h: number, private styleOf: StyleOf, px?: Uint32Array) {
    this.px = px ?? new Uint32Array(w * h);
    this.base = new Uint32Array(w * h);
    this.full = { x0: 0, y0: 0, x1: w, y1: h };
  }

  /** The pixels every paint starts from (copied). */
  setBase(base: Uint32Array): void {
    this.base.set(base);
  }

  /** Outline i is the screen rectangle coords[4i..4i+3] (x1, y1, x2, y2); index order is drawing order. */
  setOutlines(coords: Float64Array<ArrayBufferLike>, n: number): void {
    this.n = n;
    this.xy = coords;
    if (this.bounds.length < 4 * n) this.bounds = new Int32Array(4 * n);
    for (let i = 0; i < n; i++) {
      const b = outlineBounds(coords[4 * i], coords[4 * i + 1], coords[4 * i + 2], coords[4 * i + 3]);
      this.bounds[4 * i] = b.x0;
      this.bounds[4 * i + 1] = b.y0;
      this.bounds[4 * i + 2] = b.x1;
      this.bounds[4 * i + 3] = b.y1;
    }
  }

  get count(): number {
    return this.n;
  }

  paintAll(): void {
    this.px.set(this.base);
    this.strokeIn(this.full);
  }

  /**
   * Repaint around the outlines whose style changed (their rectangles did not move). Returns the
   * rectangles written, for a partial upload, or null after a full paint (too many changed).
   */
  repaint(changed: ArrayLike<number>): Clip[] | null {
    if (changed.length > Math.max(8, this.n * FULL_SHARE)) {
      this.paintAll();
      return null;
    }
    const out: Clip[] = [];
    for (let k = 0; k < changed.length; k++) {
      const i = changed[k];
      if (i < 0 || i >= this.n) continue;
      const c = {
        x0: Math.max(0, this.bounds[4 * i]), y0: Math.max(0, this.bounds[4 * i + 1]),
        x1: Math.min(this.w, this.bounds[4 * i + 2]), y1: Math.min(this.h, this.bounds[4 * i + 3]),
      };
      if (c.x0 >= c.x1 || c.y0 >= c.y1) continue;
      for (let y = c.y0; y < c.y1; y++) {
        const row = y * this.w;
        this.px.set(this.base.subarray(row + c.x0, row + c.x1), row + c.x0);
      }
      this.strokeIn(c);
      out.push(c);
    }
    return out;
  }

  private strokeIn(c: Clip): void {
    const b = this.bounds, xy = this.xy;
    for (let i = 0; i < this.n; i++) {
      if (b[4 * i + 2] <= c.x0 || b[4 * i] >= c.x1 || b[4 * i + 3] <= c.y0 || b[4 * i + 1] >= c.y1) continue;
      const s = this.styleOf(i);
      if (s) strokeRect(this.px, this.w, this.h, xy[4 * i], xy[4 * i + 1], xy[4 * i + 2], xy[4 * i + 3], s, c);
    }
  }
}
