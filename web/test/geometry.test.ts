import { describe, expect, it } from "vitest";
import { fitView, hitTest, pan, rectToScreen, toImage, toScreen, zoomAt } from "../src/logic/geometry";

describe("view transforms", () => {
  it("fits a wide image to the viewport width and centres it vertically", () => {
    const v = fitView(2000, 1000, 1000, 800);
    expect(v.scale).toBeCloseTo(0.5);
    expect(toScreen(v, 0, 0)).toEqual([0, 150]);
    expect(toScreen(v, 2000, 1000)).toEqual([1000, 650]);
  });

  it("screen and image coordinates are inverse of each other", () => {
    const v = { scale: 2.5, ox: -40, oy: 17 };
    const [sx, sy] = toScreen(v, 123.5, 77.25);
    const [x, y] = toImage(v, sx, sy);
    expect(x).toBeCloseTo(123.5);
    expect(y).toBeCloseTo(77.25);
  });

  it("zooming keeps the point under the cursor fixed and clamps the scale", () => {
    const v = fitView(640, 480, 960, 640);
    const before = toImage(v, 300, 200);
    const z = zoomAt(v, 300, 200, 3);
    expect(z.scale).toBeCloseTo(v.scale * 3);
    const after = toImage(z, 300, 200);
    expect(after[0]).toBeCloseTo(before[0]);
    expect(after[1]).toBeCloseTo(before[1]);
    expect(zoomAt(v, 0, 0, 1e9).scale).toBe(40);
    expect(zoomAt(v, 0, 0, 1e-9).scale).toBe(0.02);
  });

  it("pans by screen pixels and maps rectangles", () => {
    const v = pan({ scale: 2, ox: 0, oy: 0 }, 10, -5);
    expect(rectToScreen(v, { x1: 1, y1: 2, x2: 3, y2: 4 })).toEqual({ x1: 12, y1: -1, x2: 16, y2: 3 });
  });

  it("a click picks the smallest visible box containing the point", () => {
    const boxes = [{ x1: 0, y1: 0, x2: 100, y2: 100 }, { x1: 10, y1: 10, x2: 30, y2: 30 }, { x1: 12, y1: 12, x2: 20, y2: 20 }];
    expect(hitTest(boxes, 15, 15)).toBe(2);
    expect(hitTest(boxes, 15, 15, (i) => i !== 2)).toBe(1);
    expect(hitTest(boxes, 50, 50)).toBe(0);
    expect(hitTest(boxes, 500, 500)).toBe(-1);
  });
});
