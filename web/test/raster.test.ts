import { describe, expect, it } from "vitest";
import { hslToRgb, packColor, strokeRect } from "../src/logic/raster";

const W = 8, H = 6;
const grid = (px: Uint32Array) => Array.from({ length: H }, (_, y) =>
  Array.from(px.slice(y * W, y * W + W), (v) => (v === 0 ? "." : v === RED ? "r" : "m")).join(""));
const RED = packColor("#ff0000");

describe("box rasteriser", () => {
  it("packs colours little-endian RGBA", () => {
    expect(packColor("#ff0000")).toBe(0xff0000ff);
    expect(packColor("#0000ff")).toBe(0xffff0000);
    expect(packColor("hsl(120, 100%, 50%)")).toBe(0xff00ff00);
    expect(hslToRgb(0, 0, 1)).toEqual([255, 255, 255]);
  });

  it("draws a one-pixel outline covering exactly the rectangle's border", () => {
    const px = new Uint32Array(W * H);
    strokeRect(px, W, H, 1, 1, 5, 4, { color: RED, width: 1 });
    expect(grid(px)).toEqual([
      "........",
      ".rrrr...",
      ".r..r...",
      ".rrrr...",
      "........",
      "........"]);
  });

  it("thick lines grow inwards and clip at the buffer edges", () => {
    const px = new Uint32Array(W * H);
    strokeRect(px, W, H, -3, 2, 12, 6, { color: RED, width: 2 });
    expect(grid(px)).toEqual([
      "........",
      "........",
      "rrrrrrrr",
      "rrrrrrrr",
      "rrrrrrrr",
      "rrrrrrrr"]);
    const none = new Uint32Array(W * H);
    strokeRect(none, W, H, 20, 20, 30, 30, { color: RED, width: 1 });
    expect(none.every((v) => v === 0)).toBe(true);
  });

  it("half strokes mix with the pixel below; dashes skip runs", () => {
    const px = new Uint32Array(W * H).fill(packColor("#000000"));
    strokeRect(px, W, H, 0, 0, 8, 1, { color: packColor("#fefefe"), width: 1, half: true });
    expect(px[0]).toBe(packColor("#7f7f7f"));
    const dashed = new Uint32Array(W * H);
    strokeRect(dashed, W, H, 0, 0, 8, 1, { color: RED, width: 1, dash: 2 });
    expect(grid(dashed)[0]).toBe("rr..rr..");
  });
});
