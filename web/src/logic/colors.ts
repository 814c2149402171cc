// Colours by prepass source. Known sources get fixed, distinguishable colours so a screenshot
// reads the same every time; an unknown source gets a stable hue from its name.
import { DetectionSource } from "../gen/tator/common/v1/common_pb";

/** A DetectionSource as the short name the colours, toggles and tables use ("yolo", "sam3_text"). */
export function sourceName(source: DetectionSource): string {
  if (source === DetectionSource.UNSPECIFIED) return "";
  return (DetectionSource[source] ?? `source_${source}`).toLowerCase();
}
const FIXED: Record<string, string> = {
  yolo: "#e6194b",
  rfdetr: "#3cb44b",
  sam3_text: "#4363d8",
  sam3_similarity: "#f58231",
  detector: "#911eb4",
  ground_truth: "#ffe119",
};

export function hashHue(name: string): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return (h >>> 0) % 360;
}

export function sourceColor(source: string): string {
  return FIXED[source] ?? `hsl(${hashHue(source)}, 70%, 50%)`;
}

/** Sources in a stable display order: the fixed ones first, then the rest by name. */
export function orderSources(sources: Iterable<string>): string[] {
  const known = Object.keys(FIXED);
  return [...new Set(sources)].sort((a, b) => {
    const ia = known.indexOf(a), ib = known.indexOf(b);
    if (ia !== ib) return (ia < 0 ? 1e9 : ia) - (ib < 0 ? 1e9 : ib);
    return a.localeCompare(b);
  });
}
