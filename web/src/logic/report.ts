// Shapes a typed calibration report into what the report screen draws.
export interface MetricsLike {
  tp: number;
  fp: number;
  fn: number;
  precision: number;
  recall: number;
  f1: number;
}

export interface MethodLike {
  method: string;
  evalIou: number;
  overall?: MetricsLike;
  perClass: Record<string, MetricsLike>;
}

export interface Row {
  method: string;
  evalIou: number;
  scope: string; // "overall" or a class name
  m: MetricsLike;
}

const EMPTY: MetricsLike = { tp: 0, fp: 0, fn: 0, precision: 0, recall: 0, f1: 0 };

/** Trained models first, then accept_all, then baselines; each at every eval IoU, overall then per class. */
export function tableRows(results: readonly MethodLike[], labelmap: readonly string[]): Row[] {
  const rank = (m: string) => (m === "mlp" || m === "xgb" ? 0 : m === "accept_all" ? 1 : 2);
  const sorted = [...results].sort((a, b) => rank(a.method) - rank(b.method) || a.method.localeCompare(b.method)
    || a.evalIou - b.evalIou);
  const rows: Row[] = [];
  for (const r of sorted) {
    rows.push({ method: r.method, evalIou: r.evalIou, scope: "overall", m: r.overall ?? EMPTY });
    const extra = Object.keys(r.perClass).filter((k) => !labelmap.includes(k)).sort();
    for (const lab of [...labelmap, ...extra]) {
      if (r.perClass[lab]) rows.push({ method: r.method, evalIou: r.evalIou, scope: lab, m: r.perClass[lab] });
    }
  }
  return rows;
}

export interface Plot {
  width: number;
  height: number;
  pad: number;
}

/** SVG path of a PR curve (x = recall, y = precision, both 0..1), points sorted by recall. */
export function prPath(recall: readonly number[], precision: readonly number[], p: Plot): string {
  const n = Math.min(recall.length, precision.length);
  const pts: [number, number][] = [];
  for (let i = 0; i < n; i++) pts.push([recall[i], precision[i]]);
  pts.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  return pts.map(([r, pr], i) => `${i ? "L" : "M"}${sx(r, p).toFixed(1)},${sy(pr, p).toFixed(1)}`).join(" ");
}

export function sx(v: number, p: Plot): number {
  return p.pad + Math.max(0, Math.min(1, v)) * (p.width - 2 * p.pad);
}

export function sy(v: number, p: Plot): number {
  return p.height - p.pad - Math.max(0, Math.min(1, v)) * (p.height - 2 * p.pad);
}

export interface Bar {
  label: string;
  method: string;
  value: number;
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Grouped bars: one group per class, one bar per method, heights are F1 at the given eval IoU. */
export function f1Bars(results: readonly MethodLike[], labelmap: readonly string[], evalIou: number, p: Plot): Bar[] {
  const entries = results.filter((r) => Math.abs(r.evalIou - evalIou) < 1e-6);
  const groupW = (p.width - 2 * p.pad) / Math.max(labelmap.length, 1);
  const barW = (groupW * 0.8) / Math.max(entries.length, 1);
  const bars: Bar[] = [];
  labelmap.forEach((lab, gi) => {
    entries.forEach((e, k) => {
      const value = e.perClass[lab]?.f1 ?? 0;
      const top = sy(value, p);
      bars.push({ label: lab, method: e.method, value, x: p.pad + gi * groupW + groupW * 0.1 + k * barW, y: top,
        w: barW, h: sy(0, p) - top });
    });
  });
  return bars;
}

/** The point of a curve nearest a threshold (for the slider's operating point). */
export function pointAt(thresholds: readonly number[], t: number): number {
  let best = 0;
  for (let i = 1; i < thresholds.length; i++) {
    if (Math.abs(thresholds[i] - t) < Math.abs(thresholds[best] - t)) best = i;
  }
  return best;
}
