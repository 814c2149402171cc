import { AcceptMethod, type CalibrationReport, JobKind, JobState } from "../gen/tator/orchestrator/v1/orchestrator_pb";
import { sourceColor, sourceName } from "../logic/colors";
import { secondsOf, when } from "../logic/format";
import { f1Bars, type MethodLike, type Plot, prPath, sx, sy, tableRows } from "../logic/report";
import { formatRoute } from "../logic/route";
import { type Ctx, h, s } from "../ui";

export async function calibrationJobs(ctx: Ctx, limitPages = 5) {
  const out = [];
  let pageToken = "";
  for (let i = 0; i < limitPages; i++) {
    const res = await ctx.call(ctx.api.listJobs({ pageSize: 100, pageToken }));
    if (!res) break;
    out.push(...res.jobs.filter((j) => j.kind === JobKind.CALIBRATION && j.state === JobState.SUCCEEDED));
    pageToken = res.nextPageToken;
    if (!pageToken) break;
  }
  return out;
}

export async function renderCalibration(ctx: Ctx, el: HTMLElement, job?: string): Promise<void> {
  el.append(h("h1", {}, "Calibration report"));
  if (!job) {
    const jobs = await calibrationJobs(ctx);
    el.append(jobs.length
      ? h("ul", { class: "list", id: "reports" }, jobs.map((j) => h("li", {},
        h("a", { href: formatRoute({ screen: "calibration", job: j.id }), "data-job": j.id }, j.id),
        h("span", { class: "muted" }, ` ${j.datasetId} · ${when(secondsOf(j.updateTime))}`))))
      : h("p", {}, "No finished calibration yet: start one on the ", h("a", { href: "#/jobs" }, "Jobs"), " screen."));
    return;
  }
  const res = await ctx.call(ctx.api.getCalibrationReport({ jobId: job }));
  if (!res?.report) return;
  drawReport(el, res.report);
}

/** mlp, xgb, accept_all or best_single_source:<source>: the names the report's tables and colours use. */
export function methodName(method: AcceptMethod, source = ""): string {
  const name = (AcceptMethod[method] ?? "unspecified").toLowerCase();
  return source ? `${name}:${source}` : name;
}

const methodColor = (m: string) => sourceColor(m.startsWith("best_single_source") ? "detector" : m);

export function drawReport(el: HTMLElement, rep: CalibrationReport): void {
  const results: MethodLike[] = rep.results.map((r) => ({ method: methodName(r.method, sourceName(r.source)), evalIou: r.evalIou,
    overall: r.overall, perClass: r.perClass }));
  const labelmap = rep.labelmap.length ? rep.labelmap : Object.keys(results[0]?.perClass ?? {});
  el.append(h("p", { class: "muted" }, `${rep.jobId} · dataset ${rep.datasetId} · test split `,
    Object.entries(rep.splitImages).map(([k, v]) => `${k} ${v}`).join(", "),
    ` · primary eval IoU ${rep.primaryEvalIou}`));
  const plot: Plot = { width: 420, height: 340, pad: 36 };
  const pr = s("svg", { width: plot.width, height: plot.height, id: "pr-curves", class: "chart" });
  axes(pr, plot, "recall", "precision");
  rep.curves.forEach((c, k) => {
    const model = methodName(c.model);
    pr.append(s("path", { d: prPath(c.recall, c.precision, plot), fill: "none", stroke: methodColor(model),
      "stroke-width": 2, "data-model": model }));
    pr.append(s("text", { x: plot.pad + 8, y: plot.height - plot.pad - 10 - 14 * k, fill: methodColor(model),
      "font-size": 12 }, `— ${model} over one global threshold`));
  });
  for (const r of results.filter((r) => Math.abs(r.evalIou - rep.primaryEvalIou) < 1e-6 && r.overall)) {
    pr.append(s("circle", { cx: sx(r.overall!.recall, plot), cy: sy(r.overall!.precision, plot), r: 4,
      fill: methodColor(r.method) }, s("title", {}, `${r.method}: P ${r.overall!.precision.toFixed(3)} R ${r.overall!.recall.toFixed(3)}`)));
  }
  const fplot: Plot = { width: Math.max(420, 120 * labelmap.length + 72), height: 340, pad: 36 };
  const f1 = s("svg", { width: fplot.width, height: fplot.height, id: "f1-bars", class: "chart" });
  axes(f1, fplot, "", "F1");
  for (const b of f1Bars(results, labelmap, rep.primaryEvalIou, fplot)) {
    f1.append(s("rect", { x: b.x, y: b.y, width: Math.max(b.w - 1, 1), height: b.h, fill: methodColor(b.method) },
      s("title", {}, `${b.label} ${b.method}: F1 ${b.value.toFixed(3)}`)));
  }
  labelmap.forEach((lab, i) => {
    const gw = (fplot.width - 2 * fplot.pad) / labelmap.length;
    f1.append(s("text", { x: fplot.pad + gw * (i + 0.5), y: fplot.height - 8, "text-anchor": "middle", "font-size": 12 }, lab));
  });
  const methods = [...new Set(results.filter((r) => Math.abs(r.evalIou - rep.primaryEvalIou) < 1e-6).map((r) => r.method))];
  const legend = h("div", { class: "legend", id: "method-legend" }, methods.map((m) => h("span", {},
    h("span", { class: "swatch", style: `background:${methodColor(m)}` }), m, " ")));
  el.append(h("div", { class: "charts" },
    h("figure", {}, pr, h("figcaption", {}, "precision / recall (test split); dots: each method's operating point")),
    h("figure", {}, f1, h("figcaption", {}, "per-class F1 at the primary eval IoU"))), legend);
  el.append(h("h2", {}, "Thresholds"), h("table", { class: "grid", id: "thresholds" },
    h("thead", {}, h("tr", {}, ["model", "class", "threshold", "reason", "val P", "val R", "val F1"].map((c) => h("th", {}, c)))),
    h("tbody", {}, rep.thresholds.flatMap((t) => t.classes.map((c) => h("tr", {},
      h("td", {}, methodName(t.model), t.isDefault ? " (default)" : ""), h("td", {}, c.label), h("td", {}, c.threshold.toFixed(3)),
      h("td", {}, c.reason), h("td", {}, (c.val?.precision ?? 0).toFixed(3)), h("td", {}, (c.val?.recall ?? 0).toFixed(3)),
      h("td", {}, (c.val?.f1 ?? 0).toFixed(3))))))));
  el.append(h("h2", {}, "Precision / recall / F1 (test split)"), h("table", { class: "grid", id: "metrics" },
    h("thead", {}, h("tr", {}, ["method", "eval IoU", "scope", "TP", "FP", "FN", "P", "R", "F1"].map((c) => h("th", {}, c)))),
    h("tbody", {}, tableRows(results, labelmap).map((r) => h("tr", { class: r.scope === "overall" ? "overall" : "" },
      h("td", {}, r.method), h("td", {}, r.evalIou.toFixed(2)), h("td", {}, r.scope), h("td", {}, r.m.tp),
      h("td", {}, r.m.fp), h("td", {}, r.m.fn), h("td", {}, r.m.precision.toFixed(3)),
      h("td", {}, r.m.recall.toFixed(3)), h("td", {}, r.m.f1.toFixed(3)))))));
}

function axes(svg: SVGElement, p: Plot, xLabel: string, yLabel: string): void {
  svg.append(s("rect", { x: p.pad, y: p.pad, width: p.width - 2 * p.pad, height: p.height - 2 * p.pad, fill: "none",
    stroke: "#999" }));
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    svg.append(s("text", { x: p.pad - 4, y: sy(v, p) + 4, "text-anchor": "end", "font-size": 10 }, v.toFixed(2)));
    if (xLabel) svg.append(s("text", { x: sx(v, p), y: p.height - p.pad + 14, "text-anchor": "middle", "font-size": 10 }, v.toFixed(2)));
  }
  if (xLabel) svg.append(s("text", { x: p.width / 2, y: p.height - 4, "text-anchor": "middle", "font-size": 12 }, xLabel));
  svg.append(s("text", { x: 10, y: p.pad - 10, "font-size": 12 }, yLabel));
}
