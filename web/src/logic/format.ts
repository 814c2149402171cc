import type { Prompt } from "../gen/tator/common/v1/common_pb";

export function eta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds <= 0) return "";
  if (seconds < 60) return `${Math.ceil(seconds)} s`;
  const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
  if (m < 60) return `${m} min ${s} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function pct(v: number, digits = 1): string {
  return `${(v * 100).toFixed(digits)}%`;
}

/** Seconds of a google.protobuf Timestamp or Duration ({ seconds, nanos }); 0 when unset. */
export function secondsOf(t?: { seconds: bigint; nanos: number }): number {
  return t ? Number(t.seconds) + t.nanos / 1e9 : 0;
}

export function when(unixSeconds: number): string {
  if (!unixSeconds) return "";
  return new Date(unixSeconds * 1000).toISOString().replace("T", " ").slice(0, 19);
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** A SAM3 prompt as one table cell: its text, or "exemplars <label> #<indexes>" for exemplar boxes. */
export function promptText(p: Prompt): string {
  if (p.kind.case === "text") return p.kind.value;
  if (p.kind.case === "exemplar") return `exemplars ${p.kind.value.label} #${p.kind.value.positiveIndexes.join(",")}`;
  return "";
}
