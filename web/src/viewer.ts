// The image viewer: image, prepass candidates coloured by source, ground truth, zoom/pan, candidate
// provenance and per-class threshold sliders. It makes no RPC; screens/image.ts feeds it.
import type { GroundTruthBox, PrepassResult } from "./gen/tator/orchestrator/v1/orchestrator_pb";
import { orderSources, sourceColor } from "./logic/colors";
import { fitView, hitTest, pan, type Rect, toImage, type View, zoomAt } from "./logic/geometry";
import { packColor, strokeRect } from "./logic/raster";
import { countDecisions, decideAll } from "./logic/thresholds";
import { h } from "./ui";

export interface ThresholdSet {
  model: string;
  byClass: Map<string, number>;
}

export interface DrawStats {
  draws: number;
  lastMs: number;
  maxMs: number;
  totalMs: number;
}

const W = 960, H = 640;

export class Viewer {
  readonly root: HTMLElement;
  readonly stats: DrawStats = { draws: 0, lastMs: 0, maxMs: 0, totalMs: 0 };
  private canvas: HTMLCanvasElement;
  private g: CanvasRenderingContext2D;
  private img: HTMLImageElement | null = null;
  private imgW = 1;
  private imgH = 1;
  private view: View = { scale: 1, ox: 0, oy: 0 };
  private result: PrepassResult | null = null;
  private boxes: Rect[] = [];
  private gt: GroundTruthBox[] = [];
  private showGt = true;
  private hidden = new Set<string>();
  private sources: string[] = [];
  private thresholds: ThresholdSet | null = null;
  private decisions: Uint8Array = new Uint8Array(0);
  private selected = -1;
  private toggles: HTMLElement;
  private sliders: HTMLElement;
  private details: HTMLElement;
  private summary: HTMLElement;
  private frame = 0;
  private drag: { x: number; y: number; moved: boolean } | null = null;
  private base: Uint32Array | null = null;
  private baseKey = "";
  private baseImg: HTMLImageElement | null = null;
  private frameData = new ImageData(W, H);

  constructor() {
    this.canvas = h("canvas", { id: "viewer", width: W, height: H, tabindex: 0 });
    // Pixels are read back once per view change, so the canvas is kept in memory the CPU can read.
    this.g = this.canvas.getContext("2d", { willReadFrequently: true })!;
    this.toggles = h("div", { class: "toggles", id: "source-toggles" });
    this.sliders = h("div", { class: "sliders", id: "threshold-sliders" });
    this.details = h("div", { class: "details", id: "candidate-details" }, h("p", { class: "muted" },
      "Click a box to see where it came from."));
    this.summary = h("p", { class: "muted", id: "candidate-summary" });
    this.root = h("div", { class: "viewer" },
      h("div", { class: "stage" }, this.canvas, this.summary, this.toggles, this.sliders),
      this.details);
    // End-to-end tests and the benchmark reach the live viewer here.
    (window as unknown as { tatorViewer?: Viewer }).tatorViewer = this;
    this.canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      this.view = zoomAt(this.view, e.offsetX, e.offsetY, e.deltaY < 0 ? 1.2 : 1 / 1.2);
      this.schedule();
    }, { passive: false });
    this.canvas.addEventListener("pointerdown", (e) => {
      this.drag = { x: e.clientX, y: e.clientY, moved: false };
      this.canvas.setPointerCapture(e.pointerId);
    });
    this.canvas.addEventListener("pointermove", (e) => {
      if (!this.drag) return;
      const dx = e.clientX - this.drag.x, dy = e.clientY - this.drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 2) this.drag.moved = true;
      if (this.drag.moved) {
        this.view = pan(this.view, dx, dy);
        this.drag.x = e.clientX;
        this.drag.y = e.clientY;
        this.schedule();
      }
    });
    this.canvas.addEventListener("pointerup", (e) => {
      const wasDrag = this.drag?.moved;
      this.drag = null;
      if (!wasDrag) this.clickAt(e.offsetX, e.offsetY);
    });
  }

  setImage(img: HTMLImageElement, width: number, height: number): void {
    this.img = img;
    this.imgW = width || img.naturalWidth;
    this.imgH = height || img.naturalHeight;
    this.resetView();
  }

  resetView(): void {
    this.view = fitView(this.imgW, this.imgH, W, H);
    this.schedule();
  }

  zoom(factor: number): void {
    this.view = zoomAt(this.view, W / 2, H / 2, factor);
    this.schedule();
  }

  setGroundTruth(gt: GroundTruthBox[]): void {
    this.gt = gt;
    this.schedule();
  }

  toggleGroundTruth(): boolean {
    this.showGt = !this.showGt;
    this.renderToggles();
    this.schedule();
    return this.showGt;
  }

  setResult(result: PrepassResult | null): void {
    this.result = result;
    this.selected = -1;
    this.boxes = (result?.candidates ?? []).map((c) => ({ x1: c.box?.x1 ?? 0, y1: c.box?.y1 ?? 0,
      x2: c.box?.x2 ?? 0, y2: c.box?.y2 ?? 0 }));
    this.sources = orderSources((result?.candidates ?? []).map((c) => c.sourcePrimary));
    this.renderToggles();
    this.applyThresholds();
    this.showDetails();
  }

  /** Sources present in the result, in toggle order (keys 1..9 toggle them). */
  get sourceList(): readonly string[] {
    return this.sources;
  }

  toggleSource(source: string): void {
    if (this.hidden.has(source)) this.hidden.delete(source);
    else this.hidden.add(source);
    this.renderToggles();
    this.schedule();
  }

  setThresholds(t: ThresholdSet | null): void {
    this.thresholds = t;
    this.renderSliders();
    this.applyThresholds();
  }

  setThreshold(label: string, value: number): void {
    if (!this.thresholds) return;
    this.thresholds.byClass.set(label, value);
    this.applyThresholds();
  }

  private applyThresholds(): void {
    const cands = this.result?.candidates ?? [];
    this.decisions = this.thresholds ? decideAll(cands, this.thresholds.byClass, 0.5, this.decisions)
      : new Uint8Array(cands.length);
    this.updateSummary();
    this.schedule();
  }

  private updateSummary(): void {
    const n = this.result?.candidates.length ?? 0;
    if (!this.result) {
      this.summary.textContent = "No prepass yet.";
      return;
    }
    const c = countDecisions(this.decisions);
    this.summary.textContent = this.thresholds
      ? `${n} candidates · ${c.accepted} accepted · ${c.rejected} rejected${c.unscored ? ` · ${c.unscored} unscored` : ""}`
      : `${n} candidates from ${this.sources.length} sources`;
    this.summary.dataset.accepted = String(c.accepted);
  }

  private renderToggles(): void {
    const counts = new Map<string, number>();
    for (const c of this.result?.candidates ?? []) counts.set(c.sourcePrimary, (counts.get(c.sourcePrimary) ?? 0) + 1);
    this.toggles.replaceChildren(
      ...this.sources.map((src, i) => h("label", { class: "toggle", "data-source": src },
        h("input", { type: "checkbox", checked: !this.hidden.has(src), onchange: () => this.toggleSource(src) }),
        h("span", { class: "swatch", style: `background:${sourceColor(src)}` }),
        `${i < 9 ? `${i + 1} ` : ""}${src} (${counts.get(src) ?? 0})`)),
      h("label", { class: "toggle", "data-source": "ground_truth" },
        h("input", { type: "checkbox", id: "gt-toggle", checked: this.showGt, onchange: () => this.toggleGroundTruth() }),
        h("span", { class: "swatch", style: `background:${sourceColor("ground_truth")}` }), `g ground truth (${this.gt.length})`));
  }

  private renderSliders(): void {
    if (!this.thresholds) {
      this.sliders.replaceChildren();
      return;
    }
    const t = this.thresholds;
    this.sliders.replaceChildren(h("div", { class: "muted" }, `accept model ${t.model}: per-class thresholds`),
      ...[...t.byClass.entries()].map(([label, value]) => {
        const out = h("output", {}, value.toFixed(2));
        const input = h("input", { type: "range", min: 0, max: 1, step: 0.01, value: String(value),
          "data-class": label, oninput: () => {
            out.textContent = Number(input.value).toFixed(2);
            this.setThreshold(label, Number(input.value));
          } });
        return h("label", { class: "slider" }, h("span", {}, label), input, out);
      }));
  }

  private clickAt(sx: number, sy: number): void {
    const [x, y] = toImage(this.view, sx, sy);
    const cands = this.result?.candidates ?? [];
    this.selected = hitTest(this.boxes, x, y, (i) => !this.hidden.has(cands[i].sourcePrimary));
    this.showDetails();
    this.schedule();
  }

  select(index: number): void {
    this.selected = index;
    this.showDetails();
    this.schedule();
  }

  private showDetails(): void {
    const r = this.result;
    const c = r && this.selected >= 0 ? r.candidates[this.selected] : undefined;
    if (!r || !c) {
      this.details.replaceChildren(h("p", { class: "muted" }, "Click a box to see where it came from."));
      return;
    }
    const atoms = new Map(r.atoms.map((a) => [a.atomId, a]));
    const probs = c.probabilities;
    const maxP = Math.max(...probs, 1e-9);
    this.details.replaceChildren(h("div", {},
      h("h3", {}, `#${c.index} ${c.label}`),
      h("p", {}, `score ${c.score.toFixed(3)} · primary `, h("b", { style: `color:${sourceColor(c.sourcePrimary)}` },
        c.sourcePrimary), ` · sources ${c.sources.join(", ")}`),
      c.acceptProb !== undefined ? h("p", { id: "accept-prob" }, `accept probability ${c.acceptProb.toFixed(3)}`) : null,
      h("p", { class: "muted" }, `box ${[c.box?.x1, c.box?.y1, c.box?.x2, c.box?.y2].map((v) => (v ?? 0).toFixed(0)).join(", ")}`),
      h("h4", {}, "Atoms (provenance)"),
      h("table", { class: "grid small", id: "atoms" }, h("thead", {}, h("tr", {},
        ["atom", "source", "model", "run", "window", "prompt", "origin", "score"].map((x) => h("th", {}, x)))),
      h("tbody", {}, c.atomIds.map((id) => {
        const a = atoms.get(id);
        const d = a?.detection;
        return h("tr", {}, h("td", {}, id), h("td", {}, d?.source ?? a?.stage ?? ""), h("td", {}, d?.modelId ?? ""),
          h("td", {}, a?.run ?? ""), h("td", {}, d?.window?.name || "full"), h("td", {}, d?.prompt ?? ""),
          h("td", {}, a?.promptOrigin ?? ""), h("td", {}, (d?.score ?? 0).toFixed(3)));
      }))),
      h("h4", {}, `Classifier: ${c.classifierLabel || "—"} ${c.classifierScore ? c.classifierScore.toFixed(3) : ""}`),
      c.classifierError ? h("p", { class: "bad" }, c.classifierError) : null,
      h("div", { class: "bars", id: "prob-bars" }, probs.map((p, i) => h("div", { class: "bar" },
        h("span", { class: "bar-label" }, r.classifierClasses[i] ?? String(i)),
        h("span", { class: "bar-fill", style: `width:${(100 * p / maxP).toFixed(1)}%` }),
        h("span", { class: "bar-value" }, p.toFixed(3)))))));
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  /** Draw now (benchmarks call this to time one redraw). */
  draw(): void {
    const t0 = performance.now();
    const g = this.g;
    const v = this.view;
    // The image layer is rendered by the canvas once per view (zoom/pan) and kept as pixels; every
    // redraw copies it and writes the box outlines into the copy (logic/raster.ts).
    const viewKey = `${v.scale},${v.ox},${v.oy},${this.imgW},${this.imgH}`;
    if (!this.base || this.baseKey !== viewKey || this.baseImg !== this.img) {
      g.setTransform(1, 0, 0, 1, 0, 0);
      g.fillStyle = "#222";
      g.fillRect(0, 0, W, H);
      if (this.img) g.drawImage(this.img, v.ox, v.oy, this.imgW * v.scale, this.imgH * v.scale);
      this.base = new Uint32Array(g.getImageData(0, 0, W, H).data.buffer);
      this.baseKey = viewKey;
      this.baseImg = this.img;
    }
    const px = new Uint32Array(this.frameData.data.buffer);
    px.set(this.base);
    const cands = this.result?.candidates ?? [];
    // One stroke style per (source, decision), made once per draw: no allocation per box.
    const styles = new Map(this.sources.map((src) => {
      const color = packColor(sourceColor(src));
      return [src, [{ color, width: 2 }, { color, width: 3 }, { color, width: 1, half: true }]];
    }));
    for (let i = 0; i < cands.length; i++) {
      const src = cands[i].sourcePrimary;
      if (this.hidden.has(src)) continue;
      const b = this.boxes[i];
      strokeRect(px, W, H, b.x1 * v.scale + v.ox, b.y1 * v.scale + v.oy, b.x2 * v.scale + v.ox, b.y2 * v.scale + v.oy,
        styles.get(src)![this.decisions[i]]);
    }
    if (this.showGt) {
      const gtStroke = { color: packColor(sourceColor("ground_truth")), width: 1, dash: 4 };
      for (const gt of this.gt) {
        const b = gt.box!;
        strokeRect(px, W, H, b.x1 * v.scale + v.ox - 2, b.y1 * v.scale + v.oy - 2, b.x2 * v.scale + v.ox + 2,
          b.y2 * v.scale + v.oy + 2, gtStroke);
      }
    }
    const sel = this.boxes[this.selected];
    if (this.selected >= 0 && sel) {
      strokeRect(px, W, H, sel.x1 * v.scale + v.ox - 4, sel.y1 * v.scale + v.oy - 4, sel.x2 * v.scale + v.ox + 4,
        sel.y2 * v.scale + v.oy + 4, { color: 0xffffffff, width: 2 });
    }
    g.putImageData(this.frameData, 0, 0);
    const ms = performance.now() - t0;
    const s = this.stats;
    s.draws++;
    s.lastMs = ms;
    s.totalMs += ms;
    s.maxMs = Math.max(s.maxMs, ms);
    this.canvas.dataset.draws = String(s.draws);
  }

  /** Screen position (canvas pixels) of a candidate's centre, for tests that click a box. */
  candidateCenter(i: number): [number, number] | null {
    const b = this.boxes[i];
    if (!b) return null;
    return [((b.x1 + b.x2) / 2) * this.view.scale + this.view.ox, ((b.y1 + b.y2) / 2) * this.view.scale + this.view.oy];
  }

  /** Index of a visible candidate of each source, in toggle order. */
  candidateOf(source: string): number {
    return (this.result?.candidates ?? []).findIndex((c) => c.sourcePrimary === source);
  }

  destroy(): void {
    if (this.frame) cancelAnimationFrame(this.frame);
  }
}
