import { describe, expect, it } from "vitest";
import { f1Bars, type MethodLike, pointAt, prPath, sx, sy, tableRows } from "../src/logic/report";

const m = (tp: number, fp: number, fn: number) => {
  const precision = tp / Math.max(tp + fp, 1), recall = tp / Math.max(tp + fn, 1);
  return { tp, fp, fn, precision, recall, f1: precision + recall ? 2 * precision * recall / (precision + recall) : 0 };
};
const results: MethodLike[] = [
  { method: "best_single_source:yolo", evalIou: 0.5, overall: m(5, 5, 5), perClass: { circle: m(3, 2, 2), square: m(2, 3, 3) } },
  { method: "xgb", evalIou: 0.75, overall: m(7, 1, 3), perClass: { circle: m(4, 0, 1), square: m(3, 1, 2) } },
  { method: "xgb", evalIou: 0.5, overall: m(8, 1, 2), perClass: { square: m(4, 1, 1), circle: m(4, 0, 1), odd: m(0, 0, 0) } },
  { method: "accept_all", evalIou: 0.5, overall: m(9, 9, 1), perClass: { circle: m(5, 4, 0), square: m(4, 5, 1) } },
];

describe("report shaping", () => {
  it("orders trained models, accept_all, then baselines; overall first, classes in labelmap order", () => {
    const rows = tableRows(results, ["circle", "square"]);
    expect(rows.slice(0, 4).map((r) => [r.method, r.evalIou, r.scope])).toEqual([
      ["xgb", 0.5, "overall"], ["xgb", 0.5, "circle"], ["xgb", 0.5, "square"], ["xgb", 0.5, "odd"]]);
    expect(rows.map((r) => r.method).indexOf("accept_all")).toBeLessThan(rows.map((r) => r.method).indexOf("best_single_source:yolo"));
    expect(rows).toHaveLength(4 + 3 + 3 + 3);
  });

  it("maps PR points into the plot with precision up and recall right, sorted by recall", () => {
    const p = { width: 200, height: 100, pad: 10 };
    expect(sx(0, p)).toBe(10);
    expect(sx(1, p)).toBe(190);
    expect(sy(1, p)).toBe(10);
    expect(sy(0, p)).toBe(90);
    expect(prPath([1, 0, 0.5], [0.5, 1, 0.75], p)).toBe("M10.0,10.0 L100.0,30.0 L190.0,50.0");
    expect(sx(2, p)).toBe(190); // clamped
  });

  it("draws one F1 bar per class and method at the chosen IoU, heights proportional to F1", () => {
    const p = { width: 300, height: 110, pad: 10 };
    const bars = f1Bars(results, ["circle", "square"], 0.5, p);
    expect(bars).toHaveLength(2 * 3);
    const xgbCircle = bars.find((b) => b.method === "xgb" && b.label === "circle")!;
    expect(xgbCircle.value).toBeCloseTo(m(4, 0, 1).f1);
    expect(xgbCircle.h).toBeCloseTo(xgbCircle.value * 90);
    const xs = bars.filter((b) => b.label === "circle").map((b) => b.x);
    expect(Math.max(...xs)).toBeLessThan(Math.min(...bars.filter((b) => b.label === "square").map((b) => b.x)));
  });

  it("finds the curve point nearest a threshold", () => {
    expect(pointAt([0.1, 0.2, 0.3, 0.4], 0.26)).toBe(2);
    expect(pointAt([0.1, 0.2], 0.9)).toBe(1);
  });
});
