// The image viewer: image, prepass candidates coloured by source, ground truth, zoom/pan, candidate
// provenance and per-class threshold sliders. It makes no RPC; screens/image.ts feeds it.
import type { GroundTruthBox, PrepassResult } from "./gen/tator/orchestrator/v1/orchestrator_pb";
import { orderSources, sourceColor, sourceName } from "./logic/colors";
import { fitView, hitTest, pan, type Rect, toImage, type View, zoomAt } from "./logic/geometry";
import { OutlinePainter } from "./logic/paint";
import { packColor, type Stroke } from "./logic/raster";
import { countDecisions, decideAll, decisionCode } from "./logic/thresholds";
import { candidateDetails } from "./details";
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
  private baseKey = "";
  private baseImg: HTMLImageElement | null = null;
  private frameData = new ImageData(W, H);
  private painter: OutlinePainter;
  /** Screen rectangles of the outlines in drawing order: candidates, ground truth, the selection. */
  private coords = new Float64Array(4);
  /** Per candidate: its source's strokes by decision code, and whether its source is shown. */
  private candStyles: Stroke[][] = [];
  private visible = new Uint8Array(0);
  private byClass = new Map<string, number[]>();
  private classCounts = new Map<string, HTMLElement>();
  private gtStroke: Stroke = { color: packColor(sourceColor("ground_truth")), width: 1, dash: 4 };
  private selStroke: Stroke = { color: 0xffffffff, width: 2 };
  // What the next draw must redo: outline geometry (view, boxes, selection), every style, or only the
  // candidates whose decision a threshold flipped.
  private geomDirty = true;
  private fullDirty = true;
  private changed: number[] = [];

  constructor() {
    this.canvas = h("canvas", { id: "viewer", width: W, height: H, tabindex: 0 });
    // Pixels are read back once per view change, so the canvas is kept in memory the CPU can read.
    this.g = this.canvas.getContext("2d", { willReadFrequently: true })!;
    this.painter = new OutlinePainter(W, H, (i) => this.styleOf(i), new Uint32Array(this.frameData.data.buffer));
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
      this.schedule(true);
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
        this.schedule(true);
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
    this.schedule(true);
  }

  zoom(factor: number): void {
    this.view = zoomAt(this.view, W / 2, H / 2, factor);
    this.schedule(true);
  }

  setGroundTruth(gt: GroundTruthBox[]): void {
    this.gt = gt;
    this.schedule(true);
  }

  toggleGroundTruth(): boolean {
    this.showGt = !this.showGt;
    this.renderToggles();
    this.schedule(false);
    return this.showGt;
  }

  setResult(result: PrepassResult | null): void {
    this.result = result;
    this.selected = -1;
    this.boxes = (result?.candidates ?? []).map((c) => ({ x1: c.box?.x1 ?? 0, y1: c.box?.y1 ?? 0,
      x2: c.box?.x2 ?? 0, y2: c.box?.y2 ?? 0 }));
    this.sources = orderSources((result?.candidates ?? []).map((c) => sourceName(c.sourcePrimary)));
    // Strokes per source and the candidates of each class are fixed per result: a slider move looks
    // up both instead of building them.
    const styles = new Map(this.sources.map((src) => {
      const color = packColor(sourceColor(src));
      return [src, [{ color, width: 2 }, { color, width: 3 }, { color, width: 1, half: true }]];
    }));
    const cands = result?.candidates ?? [];
    this.candStyles = cands.map((c) => styles.get(sourceName(c.sourcePrimary))!);
    this.byClass = new Map();
    cands.forEach((c, i) => {
      const list = this.byClass.get(c.label);
      if (list) list.push(i);
      else this.byClass.set(c.label, [i]);
    });
    this.updateVisible();
    this.geomDirty = true;
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
    this.updateVisible();
    this.renderToggles();
    this.schedule(false);
  }

  setThresholds(t: ThresholdSet | null): void {
    this.thresholds = t;
    this.renderSliders();
    this.applyThresholds();
  }

  /** One class's threshold moved: only its candidates are decided again, and only flipped ones repainted. */
  setThreshold(label: string, value: number): void {
    if (!this.thresholds) return;
    this.thresholds.byClass.set(label, value);
    const cands = this.result?.candidates ?? [];
    for (const i of this.byClass.get(label) ?? []) {
      const d = decisionCode(cands[i].acceptProb, value);
      if (d === this.decisions[i]) continue;
      this.decisions[i] = d;
      if (this.visible[i]) this.changed.push(i);
    }
    if (this.changed.length > cands.length) this.schedule(false); // moves without a frame between them
    this.updateSummary();
    this.updateClassCount(label);
    this.schedule();
  }

  private applyThresholds(): void {
    const cands = this.result?.candidates ?? [];
    this.decisions = this.thresholds ? decideAll(cands, this.thresholds.byClass, Infinity, this.decisions)
      : new Uint8Array(cands.length);
    this.updateSummary();
    for (const label of this.classCounts.keys()) this.updateClassCount(label);
    this.schedule(false);
  }

  private updateVisible(): void {
    const cands = this.result?.candidates ?? [];
    this.visible = new Uint8Array(cands.length);
    cands.forEach((c, i) => { this.visible[i] = this.hidden.has(sourceName(c.sourcePrimary)) ? 0 : 1; });
  }

  /** "accepted/candidates" of one class beside its slider (data-accepted, data-total for tests). */
  private updateClassCount(label: string): void {
    const el = this.classCounts.get(label);
    if (!el) return;
    const idx = this.byClass.get(label) ?? [];
    const c = countDecisions(this.decisions, idx);
    el.textContent = `${c.accepted}/${idx.length}`;
    el.dataset.accepted = String(c.accepted);
    el.dataset.total = String(idx.length);
  }

  private updateSummary(): void {
    const n = this.result?.candidates.length ?? 0;
    if (!this.result) {
      this.summary.textContent = "No prepass yet.";
      return;
    }
    const c = countDecisions(this.decisions);
    // The orchestrator's own decision (`accepted`, at the report's thresholds) also drops duplicates of
    // an accepted box, so it can keep fewer than the thresholds alone accept.
    const cands = this.result.candidates;
    const scored = cands.some((x) => x.acceptProb !== undefined);
    const kept = cands.reduce((a, x) => a + (x.accepted ? 1 : 0), 0);
    this.summary.textContent = this.thresholds
      ? `${n} candidates · ${c.accepted} accepted · ${c.rejected} rejected${c.unscored ? ` · ${c.unscored} unscored` : ""}` +
        (scored ? ` · the orchestrator keeps ${kept} (report thresholds, duplicates dropped)` : "")
      : `${n} candidates from ${this.sources.length} sources`;
    this.summary.dataset.accepted = String(c.accepted);
    this.summary.dataset.kept = scored ? String(kept) : "";
  }

  private renderToggles(): void {
    const counts = new Map<string, number>();
    for (const c of this.result?.candidates ?? []) counts.set(sourceName(c.sourcePrimary), (counts.get(sourceName(c.sourcePrimary)) ?? 0) + 1);
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
    this.classCounts = new Map();
    this.sliders.replaceChildren(h("div", { class: "muted" }, `accept model ${t.model}: per-class thresholds`),
      ...[...t.byClass.entries()].map(([label, value]) => {
        const out = h("output", {}, value.toFixed(2));
        const input = h("input", { type: "range", min: 0, max: 1, step: 0.01, value: String(value),
          "data-class": label, oninput: () => {
            out.textContent = Number(input.value).toFixed(2);
            this.setThreshold(label, Number(input.value));
          } });
        const count = h("span", { class: "class-count muted", "data-class": label });
        this.classCounts.set(label, count);
        return h("label", { class: "slider" }, h("span", {}, label), input, out, count);
      }));
  }

  private clickAt(sx: number, sy: number): void {
    const [x, y] = toImage(this.view, sx, sy);
    const cands = this.result?.candidates ?? [];
    this.selected = hitTest(this.boxes, x, y, (i) => !this.hidden.has(sourceName(cands[i].sourcePrimary)));
    this.showDetails();
    this.schedule(true);
  }

  select(index: number): void {
    this.selected = index;
    this.showDetails();
    this.schedule(true);
  }

  private showDetails(): void {
    const r = this.result;
    const c = r && this.selected >= 0 ? r.candidates[this.selected] : undefined;
    this.details.replaceChildren(r && c ? candidateDetails(r, c)
      : h("p", { class: "muted" }, "Click a box to see where it came from."));
  }

  /** Redraw on the next frame; `geometry`: outlines moved, `false`: styles changed, none: only `changed`. */
  private schedule(geometry?: boolean): void {
    if (geometry) this.geomDirty = true;
    if (geometry !== undefined) this.fullDirty = true;
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  private styleOf(i: number): Stroke | null {
    const n = this.candStyles.length, m = this.gt.length;
    if (i < n) return this.visible[i] ? this.candStyles[i][this.decisions[i]] : null;
    if (i < n + m) return this.showGt ? this.gtStroke : null;
    return this.selected >= 0 ? this.selStroke : null;
  }

  private buildOutlines(): void {
    const v = this.view, n = this.boxes.length, m = this.gt.length;
    if (this.coords.length < 4 * (n + m + 1)) this.coords = new Float64Array(4 * (n + m + 1));
    const xy = this.coords;
    const put = (k: number, x1: number, y1: number, x2: number, y2: number, pad: number) => {
      xy[4 * k] = x1 * v.scale + v.ox - pad;
      xy[4 * k + 1] = y1 * v.scale + v.oy - pad;
      xy[4 * k + 2] = x2 * v.scale + v.ox + pad;
      xy[4 * k + 3] = y2 * v.scale + v.oy + pad;
    };
    this.boxes.forEach((b, i) => put(i, b.x1, b.y1, b.x2, b.y2, 0));
    this.gt.forEach((g, j) => put(n + j, g.box!.x1, g.box!.y1, g.box!.x2, g.box!.y2, 2));
    const sel = this.boxes[this.selected];
    if (sel) put(n + m, sel.x1, sel.y1, sel.x2, sel.y2, 4);
    else xy.fill(0, 4 * (n + m), 4 * (n + m + 1));
    this.painter.setOutlines(xy, n + m + 1);
  }

  /** Draw now (benchmarks call this to time one redraw). */
  draw(): void {
    const t0 = performance.now();
    const g = this.g;
    const v = this.view;
    // The image layer is rendered by the canvas once per view (zoom/pan) and kept as pixels; outlines
    // are written into a copy of them (logic/paint.ts, logic/raster.ts).
    const viewKey = `${v.scale},${v.ox},${v.oy},${this.imgW},${this.imgH}`;
    if (this.baseKey !== viewKey || this.baseImg !== this.img) {
      g.setTransform(1, 0, 0, 1, 0, 0);
      g.fillStyle = "#222";
      g.fillRect(0, 0, W, H);
      if (this.img) g.drawImage(this.img, v.ox, v.oy, this.imgW * v.scale, this.imgH * v.scale);
      this.painter.setBase(new Uint32Array(g.getImageData(0, 0, W, H).data.buffer));
      this.baseKey = viewKey;
      this.baseImg = this.img;
      this.fullDirty = true;
    }
    if (this.geomDirty) this.buildOutlines();
    const clips = this.fullDirty ? null : this.painter.repaint(this.changed);
    if (!clips) this.painter.paintAll();
    this.geomDirty = this.fullDirty = false;
    this.changed.length = 0;
    if (clips) for (const c of clips) g.putImageData(this.frameData, 0, 0, c.x0, c.y0, c.x1 - c.x0, c.y1 - c.y0);
    else g.putImageData(this.frameData, 0, 0);
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
    return (this.result?.candidates ?? []).findIndex((c) => sourceName(c.sourcePrimary) === source);
  }

  destroy(): void {
    if (this.frame) cancelAnimationFrame(this.frame);
  }
}
