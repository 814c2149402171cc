// Accept/reject of prepass candidates by an accept model's per-class thresholds.
export interface Scored {
  label: string;
  acceptProb?: number;
}

export type Decision = "accepted" | "rejected" | "unscored";

/** A class without its own threshold uses `fallback` (the model's global threshold). */
export function decide(c: Scored, thresholds: ReadonlyMap<string, number>, fallback = 0.5): Decision {
  if (c.acceptProb === undefined || Number.isNaN(c.acceptProb)) return "unscored";
  const t = thresholds.get(c.label) ?? fallback;
  return c.acceptProb >= t ? "accepted" : "rejected";
}

export function decideAll(cands: readonly Scored[], thresholds: ReadonlyMap<string, number>, fallback = 0.5,
                          out?: Uint8Array): Uint8Array {
  // 0 unscored, 1 accepted, 2 rejected; a typed array so a slider redraw allocates nothing.
  const res = out && out.length === cands.length ? out : new Uint8Array(cands.length);
  for (let i = 0; i < cands.length; i++) {
    const d = decide(cands[i], thresholds, fallback);
    res[i] = d === "accepted" ? 1 : d === "rejected" ? 2 : 0;
  }
  return res;
}

export function countDecisions(decisions: Uint8Array): { accepted: number; rejected: number; unscored: number } {
  let accepted = 0, rejected = 0, unscored = 0;
  for (const d of decisions) {
    if (d === 1) accepted++;
    else if (d === 2) rejected++;
    else unscored++;
  }
  return { accepted, rejected, unscored };
}
