// Accept/reject of prepass candidates by an accept model's per-class thresholds.
export interface Scored {
  label: string;
  acceptProb?: number;
}

export type Decision = "accepted" | "rejected" | "unscored";

/** Decision codes in the viewer's typed arrays. */
export const UNSCORED = 0, ACCEPTED = 1, REJECTED = 2;
const NAMES: readonly Decision[] = ["unscored", "accepted", "rejected"];

/** Accepted at or above the threshold; no probability is unscored. */
export function decisionCode(prob: number | undefined, threshold: number): number {
  if (prob === undefined || Number.isNaN(prob)) return UNSCORED;
  return prob >= threshold ? ACCEPTED : REJECTED;
}

/**
 * A class without its own threshold uses `fallback`; by default it is rejected, as the orchestrator's
 * accept model does (a class the calibration tuned no threshold for has nothing to accept it by).
 */
export function decide(c: Scored, thresholds: ReadonlyMap<string, number>, fallback = Infinity): Decision {
  return NAMES[decisionCode(c.acceptProb, thresholds.get(c.label) ?? fallback)];
}

export function decideAll(cands: readonly Scored[], thresholds: ReadonlyMap<string, number>, fallback = Infinity,
                          out?: Uint8Array): Uint8Array {
  // A typed array so a slider redraw allocates nothing.
  const res = out && out.length === cands.length ? out : new Uint8Array(cands.length);
  for (let i = 0; i < cands.length; i++) {
    res[i] = decisionCode(cands[i].acceptProb, thresholds.get(cands[i].label) ?? fallback);
  }
  return res;
}

export function countDecisions(decisions: ArrayLike<number>, only?: ArrayLike<number>):
  { accepted: number; rejected: number; unscored: number } {
  let accepted = 0, rejected = 0, unscored = 0;
  const n = only ? only.length : decisions.length;
  for (let k = 0; k < n; k++) {
    const d = decisions[only ? only[k] : k];
    if (d === ACCEPTED) accepted++;
    else if (d === REJECTED) rejected++;
    else unscored++;
  }
  return { accepted, rejected, unscored };
}
