import { describe, expect, it } from "vitest";
import { DetectionSource } from "../src/gen/tator/common/v1/common_pb";
import { hashHue, orderSources, sourceColor, sourceName } from "../src/logic/colors";

describe("source colours", () => {
  it("known sources have distinct fixed colours", () => {
    const known = ["yolo", "rfdetr", "sam3_text", "sam3_similarity", "ground_truth"].map(sourceColor);
    expect(new Set(known).size).toBe(known.length);
    expect(sourceColor("yolo")).toBe("#e6194b");
  });

  it("an unknown source gets a stable hue from its name", () => {
    expect(sourceColor("new_detector")).toBe(sourceColor("new_detector"));
    expect(sourceColor("new_detector")).toMatch(/^hsl\(\d+, 70%, 50%\)$/);
    expect(hashHue("a")).not.toBe(hashHue("b"));
    expect(hashHue("anything")).toBeGreaterThanOrEqual(0);
    expect(hashHue("anything")).toBeLessThan(360);
  });

  it("orders known sources first, then the rest by name, without duplicates", () => {
    expect(orderSources(["zeta", "sam3_text", "yolo", "alpha", "yolo"])).toEqual(["yolo", "sam3_text", "alpha", "zeta"]);
  });
});

describe("sourceName", () => {
  it("names a DetectionSource as the colours and toggles key it", () => {
    expect(sourceName(DetectionSource.YOLO)).toBe("yolo");
    expect(sourceName(DetectionSource.SAM3_SIMILARITY)).toBe("sam3_similarity");
    expect(sourceName(DetectionSource.UNSPECIFIED)).toBe("");
    expect(sourceColor(sourceName(DetectionSource.RFDETR))).toBe("#3cb44b");
  });
});
