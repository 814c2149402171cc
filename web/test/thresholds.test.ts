import { describe, expect, it } from "vitest";
import { ACCEPTED, countDecisions, decide, decideAll } from "../src/logic/thresholds";

const t = new Map([["circle", 0.7], ["square", 0.2]]);

describe("threshold application", () => {
  it("accepts at or above the class threshold and rejects below", () => {
    expect(decide({ label: "circle", acceptProb: 0.7 }, t)).toBe("accepted");
    expect(decide({ label: "circle", acceptProb: 0.69 }, t)).toBe("rejected");
    expect(decide({ label: "square", acceptProb: 0.3 }, t)).toBe("accepted");
  });

  it("a class without a threshold is rejected (as the orchestrator does) unless a fallback is given", () => {
    expect(decide({ label: "triangle", acceptProb: 0.99 }, t)).toBe("rejected");
    expect(decide({ label: "triangle", acceptProb: 0.55 }, t, 0.5)).toBe("accepted");
    expect(decide({ label: "triangle", acceptProb: 0.55 }, t, 0.6)).toBe("rejected");
    expect(decide({ label: "circle" }, t)).toBe("unscored");
    expect(decide({ label: "circle", acceptProb: NaN }, t)).toBe("unscored");
  });

  it("decides a batch into a reused buffer, and moving a threshold flips exactly the crossed candidates", () => {
    const cands = Array.from({ length: 100 }, (_, i) => ({ label: i % 2 ? "circle" : "square", acceptProb: i / 100 }));
    const buf = decideAll(cands, t);
    const before = countDecisions(buf);
    expect(before.accepted + before.rejected).toBe(100);
    expect(before.accepted).toBe(15 + 40); // circles 0.71..0.99 (15), squares 0.20..0.98 (40)
    const moved = new Map(t).set("circle", 0.9);
    const again = decideAll(cands, moved, 0.5, buf);
    expect(again).toBe(buf);
    expect(countDecisions(again).accepted).toBe(5 + 40);
  });

  it("counts one class's decisions through its index list", () => {
    const d = Uint8Array.from([ACCEPTED, 2, ACCEPTED, 0, 2]);
    expect(countDecisions(d, [0, 1, 3])).toEqual({ accepted: 1, rejected: 1, unscored: 1 });
    expect(countDecisions(d)).toEqual({ accepted: 2, rejected: 2, unscored: 1 });
  });
});
