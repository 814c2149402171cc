import { describe, expect, it } from "vitest";
import { formatRoute, parseRoute, type Route } from "../src/logic/route";

describe("hash routes", () => {
  const cases: Route[] = [
    { screen: "services" },
    { screen: "datasets" },
    { screen: "datasets", dataset: "synth" },
    { screen: "datasets", dataset: "synth", page: 3 },
    { screen: "image", dataset: "synth", image: "val/images/synth 000012.png" },
    { screen: "jobs" },
    { screen: "jobs", page: 2 },
    { screen: "calibration" },
    { screen: "calibration", job: "job-abc" },
    { screen: "glossaries", name: "my glossary" },
  ];
  it.each(cases)("round-trips %o", (r) => {
    expect(parseRoute(formatRoute(r))).toEqual(r);
  });

  it("keeps image paths readable and falls back to services", () => {
    expect(formatRoute({ screen: "image", dataset: "synth", image: "val/images/a.png" })).toBe("#/datasets/synth/image/val/images/a.png");
    expect(parseRoute("")).toEqual({ screen: "services" });
    expect(parseRoute("#/nonsense")).toEqual({ screen: "services" });
    expect(parseRoute("#/jobs/page/-4")).toEqual({ screen: "jobs", page: 0 });
  });
});
