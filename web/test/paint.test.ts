import { describe, expect, it } from "vitest";
import { OutlinePainter } from "../src/logic/paint";
import { packColor, type Stroke } from "../src/logic/raster";

const W = 97, H = 61;

// A seeded scene: a noisy base image and many overlapping outlines of three kinds of stroke (solid 2 px,
// solid 3 px, half-mixed 1 px) plus dashed ones, partly off the buffer, as the viewer draws candidates,
// ground truth and a selection.
function scene(seed: number, n: number) {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  const base = Uint32Array.from({ length: W * H }, () => (0xff000000 | Math.floor(rnd() * 0xffffff)) >>> 0);
  const coords = new Float64Array(4 * n);
  for (let i = 0; i < n; i++) {
    const x = rnd() * (W + 20) - 10, y = rnd() * (H + 20) - 10;
    coords.set([x, y, x + 3 + rnd() * 30, y + 3 + rnd() * 25], 4 * i);
  }
  const colors = [packColor("#e6194b"), packColor("#3cb44b"), packColor("#4363d8")];
  const kinds: Stroke[][] = colors.map((color) => [{ color, width: 2 }, { color, width: 3 },
    { color, width: 1, half: true }, { color, width: 1, dash: 3 }]);
  const state = Uint8Array.from({ length: n }, () => Math.floor(rnd() * 5)); // 4 = hidden
  const style = (i: number) => (state[i] === 4 ? null : kinds[i % 3][state[i]]);
  return { base, coords, state, style, rnd };
}

function painted(base: Uint32Array, coords: Float64Array, n: number, style: (i: number) => Stroke | null) {
  const p = new OutlinePainter(W, H, style);
  p.setBase(base);
  p.setOutlines(coords, n);
  p.paintAll();
  return p;
}

describe("outline painter", () => {
  it("repainting only the changed outlines gives the frame a full paint gives, pixel for pixel", () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const n = 120;
      const { base, coords, state, style, rnd } = scene(seed, n);
      const p = painted(base, coords, n, style);
      for (let round = 0; round < 6; round++) {
        const changed = Array.from({ length: 1 + Math.floor(rnd() * 8) }, () => Math.floor(rnd() * n));
        for (const i of changed) state[i] = (state[i] + 1 + Math.floor(rnd() * 4)) % 5;
        const clips = p.repaint(changed);
        expect(clips).not.toBeNull();
        const full = painted(base, coords, n, style);
        const diff = p.px.findIndex((v, k) => v !== full.px[k]);
        expect(diff, `seed ${seed} round ${round}: first differing pixel`).toBe(-1);
        // What changed lies inside the rectangles handed back for upload.
        for (const c of clips!) expect(c.x0 >= 0 && c.y0 >= 0 && c.x1 <= W && c.y1 <= H && c.x0 < c.x1).toBe(true);
      }
    }
  });

  it("a repaint writes nothing outside the changed outlines' rectangles", () => {
    const n = 60;
    const { base, coords, state, style } = scene(9, n);
    const p = painted(base, coords, n, style);
    const before = p.px.slice();
    const i = [...state.keys()].find((k) => coords[4 * k] > 2 && coords[4 * k + 1] > 2 && coords[4 * k + 2] < W - 2
      && coords[4 * k + 3] < H - 2)!;
    state[i] = state[i] === 0 ? 1 : 0;
    const [c] = p.repaint([i])!;
    expect(c).toEqual({ x0: Math.round(coords[4 * i]), y0: Math.round(coords[4 * i + 1]),
      x1: Math.round(coords[4 * i + 2]), y1: Math.round(coords[4 * i + 3]) });
    let outside = 0, inside = 0;
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
      const k = y * W + x;
      const inRect = x >= c.x0 && x < c.x1 && y >= c.y0 && y < c.y1;
      if (p.px[k] !== before[k]) inRect ? inside++ : outside++;
    }
    expect(outside).toBe(0);
    expect(inside).toBeGreaterThan(0);
  });

  it("falls back to one full paint when many outlines changed", () => {
    const n = 100;
    const { base, coords, state, style } = scene(7, n);
    const p = painted(base, coords, n, style);
    const all = [...state.keys()];
    for (const i of all) state[i] = (state[i] + 1) % 5;
    expect(p.repaint(all)).toBeNull();
    expect(p.px).toEqual(painted(base, coords, n, style).px);
  });
});
