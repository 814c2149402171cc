import type { PrepassConfig, PrepassResult } from "../gen/tator/orchestrator/v1/orchestrator_pb";
import { datasetIndex, imageUrl } from "../images";
import { formatRoute } from "../logic/route";
import { type Ctx, h } from "../ui";
import { type ThresholdSet, Viewer } from "../viewer";
import { calibrationJobs, methodName } from "./calibration";

// Results survive leaving the screen (back/forward), keyed by image and calibration.
const results = new Map<string, PrepassResult>();
let chosenCalibration = "";
// The accept model refuses results of another prepass config: a prepass scored by a calibration runs
// with the config that calibration was trained on (its report returns it).
let calibrationConfig: PrepassConfig | undefined;

async function loadImage(url: string): Promise<HTMLImageElement> {
  const img = new Image();
  img.src = url;
  await img.decode();
  return img;
}

async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data as BufferSource);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export async function renderImage(ctx: Ctx, el: HTMLElement, dataset: string, name: string): Promise<() => void> {
  const t0 = performance.now();
  const viewer = new Viewer();
  const index = (await datasetIndex(ctx, dataset)) ?? [];
  const pos = index.findIndex((i) => i.name === name);
  const meta = index[pos];
  const prev = pos > 0 ? index[pos - 1] : undefined, next = pos >= 0 ? index[pos + 1] : undefined;
  const goTo = (n?: { name: string }) => n && ctx.go(formatRoute({ screen: "image", dataset, image: n.name }));
  const status = h("span", { class: "muted", id: "prepass-status" });
  const calSelect = h("select", { id: "calibration-select" }, h("option", { value: "" }, "no calibration"));
  const runBtn = h("button", { id: "run-prepass", onclick: () => run() }, "Run prepass (p)");
  el.append(h("div", { class: "imagebar" },
    h("a", { href: formatRoute({ screen: "datasets", dataset }) }, `◀ ${dataset}`), " ",
    h("button", { id: "prev-image", disabled: !prev, onclick: () => goTo(prev) }, "← prev (k)"),
    h("button", { id: "next-image", disabled: !next, onclick: () => goTo(next) }, "next (j) →"),
    h("strong", { id: "image-name" }, ` ${name} `),
    pos >= 0 ? h("span", { class: "muted" }, `${pos + 1}/${index.length}`) : null, " ",
    runBtn, " ", calSelect, " ", status),
    h("p", { class: "muted hint" }, "Wheel: zoom · drag: pan · 0: fit · 1–9: toggle sources · g: ground truth · ",
      "drop an image file on the canvas to prepass it"),
    viewer.root);
  if (!meta) {
    ctx.showError(new Error(`dataset ${dataset} has no image ${name}`));
    return () => viewer.destroy();
  }
  viewer.setGroundTruth(meta.groundTruth);
  let current: { kind: "dataset" } | { kind: "upload"; data: Uint8Array; sha: string } = { kind: "dataset" };
  const key = () => `${current.kind === "dataset" ? `${dataset}/${name}` : current.sha}|${chosenCalibration}`;
  let reportLoading: Promise<unknown> = Promise.resolve(); // a prepass waits for the chosen calibration's config

  async function run(): Promise<void> {
    ctx.clearError();
    status.textContent = "running prepass…";
    runBtn.disabled = true;
    await reportLoading;
    const source = current.kind === "dataset"
      ? { case: "datasetImage" as const, value: name }
      : { case: "image" as const, value: { sha256: current.sha, data: current.data } };
    const started = performance.now();
    const res = await ctx.call(ctx.api.prepass({ datasetId: dataset, source, calibrationId: chosenCalibration,
      config: chosenCalibration ? calibrationConfig : undefined }, { signal: ctx.signal }));
    runBtn.disabled = false;
    if (!res?.result) {
      status.textContent = "prepass failed";
      return;
    }
    results.set(key(), res.result);
    show(res.result, performance.now() - started);
  }

  function show(r: PrepassResult, ms?: number): void {
    viewer.setResult(r);
    status.textContent = `${r.candidates.length} candidates · ${r.atoms.length} atoms` +
      (r.cacheHit ? " · cache hit" : "") + (ms !== undefined ? ` · ${(ms / 1000).toFixed(1)} s` : "") +
      (r.warnings.length ? ` · ${r.warnings.length} warnings` : "");
    status.dataset.done = "1";
  }

  async function chooseCalibration(jobId: string): Promise<void> {
    chosenCalibration = jobId;
    calibrationConfig = undefined;
    if (!jobId) {
      viewer.setThresholds(null);
    } else {
      const loading = ctx.call(ctx.api.getCalibrationReport({ jobId }));
      reportLoading = loading;
      const rep = await loading;
      calibrationConfig = rep?.report?.config?.prepass;
      const model = rep?.report?.thresholds.find((t) => t.isDefault) ?? rep?.report?.thresholds[0];
      const set: ThresholdSet | null = model
        ? { model: methodName(model.model), byClass: new Map(model.classes.map((c) => [c.label, c.threshold])) } : null;
      viewer.setThresholds(set);
    }
    const cached = results.get(key());
    if (cached) show(cached);
    else if (viewer.sourceList.length) await run();
  }

  calSelect.addEventListener("change", () => void chooseCalibration(calSelect.value));
  void calibrationJobs(ctx, 1).then((jobs) => {
    for (const j of jobs) calSelect.append(h("option", { value: j.id }, `${j.id} (${j.datasetId})`));
    if (chosenCalibration && jobs.some((j) => j.id === chosenCalibration)) {
      calSelect.value = chosenCalibration;
      void chooseCalibration(chosenCalibration);
    } else {
      chosenCalibration = "";
    }
  });

  const url = await imageUrl(ctx, dataset, meta, 0);
  if (url) viewer.setImage(await loadImage(url), meta.width, meta.height);
  const cached = results.get(key());
  if (cached) show(cached);
  viewer.draw();
  el.dataset.firstRenderMs = (performance.now() - t0).toFixed(1);

  // Drop an image of your own: it is prepassed with this dataset's labelmap and glossary.
  const stage = viewer.root;
  stage.addEventListener("dragover", (e) => {
    e.preventDefault();
    stage.classList.add("dropping");
  });
  stage.addEventListener("dragleave", () => stage.classList.remove("dropping"));
  stage.addEventListener("drop", async (e) => {
    e.preventDefault();
    stage.classList.remove("dropping");
    const file = e.dataTransfer?.files[0];
    if (!file) return;
    const data = new Uint8Array(await file.arrayBuffer());
    current = { kind: "upload", data, sha: await sha256Hex(data) };
    const img = await loadImage(URL.createObjectURL(file));
    el.querySelector("#image-name")!.textContent = ` dropped: ${file.name} `;
    viewer.setGroundTruth([]);
    viewer.setResult(null);
    viewer.setImage(img, img.naturalWidth, img.naturalHeight);
    await run();
  });

  const onKey = (e: KeyboardEvent) => {
    if (e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement ||
      e.target instanceof HTMLSelectElement || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "j" || e.key === "ArrowRight") goTo(next);
    else if (e.key === "k" || e.key === "ArrowLeft") goTo(prev);
    else if (e.key === "g") viewer.toggleGroundTruth();
    else if (e.key === "p") void run();
    else if (e.key === "+" || e.key === "=") viewer.zoom(1.25);
    else if (e.key === "-") viewer.zoom(0.8);
    else if (e.key === "0") viewer.resetView();
    else if (/^[1-9]$/.test(e.key)) {
      const src = viewer.sourceList[Number(e.key) - 1];
      if (src) viewer.toggleSource(src);
    } else return;
    e.preventDefault();
  };
  document.addEventListener("keydown", onKey);
  return () => {
    document.removeEventListener("keydown", onKey);
    viewer.destroy();
  };
}
