// End-to-end: headless Debian Chromium through the real Envoy against the real stack.
//   UI_URL=http://127.0.0.1:8081/ OUT_DIR=shots node web/e2e/e2e.mjs
// Prints one JSON line with what it checked; exits non-zero on the first failed step.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const UI = process.env.UI_URL ?? "http://127.0.0.1:8081/";
const OUT = process.env.OUT_DIR ?? "e2e-out";
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const STEP_MS = Number(process.env.STEP_MS ?? 240000);
mkdirSync(OUT, { recursive: true });

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"] });
const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
page.setDefaultTimeout(STEP_MS);
const consoleErrors = [];
page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
page.on("pageerror", (e) => consoleErrors.push(`pageerror: ${e.message}`));
const done = {};
const log = (step, extra = {}) => { done[step] = { t: Math.round(performance.now()), ...extra }; console.error(`ok ${step}`); };
const ready = (screen) => page.waitForSelector(`body[data-ready="${screen}"]`);
const shot = (name) => page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
const errorText = async () => (await page.locator("#error").isVisible()) ? await page.locator("#error").textContent() : "";
const noError = async (step) => {
  const t = await errorText();
  if (t) throw new Error(`${step}: error banner: ${t}`);
};

try {
  // 1. Services
  await page.goto(UI);
  await ready("services");
  const services = await page.locator("#services tbody tr").count();
  if (services < 4) throw new Error(`services: ${services} rows`);
  const serving = await page.locator("#services td.ok").count();
  await noError("services");
  await shot("1-services");
  log("services", { services, serving });

  // 2. Datasets: pick the synthetic dataset, thumbnails load
  await page.click('#nav a[data-screen="datasets"]');
  await ready("datasets");
  await page.click('a[data-dataset="synth"]');
  await ready("datasets");
  await page.waitForFunction(() => [...document.querySelectorAll("#thumbs img")].some((i) => i.complete && i.naturalWidth > 0));
  const thumbs = await page.locator("#thumbs a.thumb").count();
  await noError("datasets");
  await shot("2-datasets");
  log("datasets", { thumbs });

  // 3. Image: open one, run a prepass, boxes from at least two sources, open a candidate's provenance
  await page.locator("#thumbs a.thumb").first().click();
  await ready("image");
  const imageName = await page.locator("#image-name").textContent();
  await page.click("#run-prepass");
  await page.waitForSelector("#prepass-status[data-done]");
  await noError("prepass");
  const sources = await page.$$eval("#source-toggles [data-source]", (els) =>
    els.map((e) => e.getAttribute("data-source")).filter((s) => s !== "ground_truth"));
  if (sources.length < 2) throw new Error(`prepass: boxes from ${sources.length} source(s): ${sources}`);
  const canvas = await page.locator("canvas#viewer").boundingBox();
  const pick = await page.evaluate((src) => {
    const v = window.tatorViewer;
    const i = v.candidateOf(src);
    return v.candidateCenter(i);
  }, sources[0]);
  await page.mouse.click(canvas.x + pick[0], canvas.y + pick[1]);
  await page.waitForSelector("#atoms tbody tr");
  const atoms = await page.locator("#atoms tbody tr").count();
  const bars = await page.locator("#prob-bars .bar").count();
  // keyboard: toggling the first source off and on again redraws
  const drawsBefore = Number(await page.getAttribute("canvas#viewer", "data-draws"));
  await page.keyboard.press("1");
  await page.waitForFunction((n) => Number(document.querySelector("canvas#viewer").dataset.draws) > n, drawsBefore);
  const firstOff = !(await page.locator(`#source-toggles [data-source="${sources[0]}"] input`).isChecked());
  await page.keyboard.press("1");
  await shot("3-image");
  // Drop an image of your own (the current one, re-encoded as JPEG in the page) on the canvas: it is
  // sent with its bytes and prepassed with the dataset's labelmap.
  await page.evaluate(async () => {
    const src = document.querySelector("canvas#viewer");
    const blob = await new Promise((r) => src.toBlob(r, "image/jpeg", 0.9));
    const dt = new DataTransfer();
    dt.items.add(new File([blob], "dropped.jpg", { type: "image/jpeg" }));
    const target = document.querySelector(".viewer");
    target.dispatchEvent(new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }));
    target.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
  });
  await page.waitForFunction(() => document.querySelector("#image-name")?.textContent?.includes("dropped.jpg")
    && !document.querySelector("#run-prepass").disabled && /candidates/.test(document.querySelector("#prepass-status").textContent));
  await noError("drop");
  const dropped = await page.locator("#prepass-status").textContent();
  await shot("3-image-dropped");
  log("image", { dropped: dropped?.trim(), image: imageName?.trim(), sources, atoms, bars, keyboardToggle: firstOff });

  // 4. Jobs: start a small prepass job and watch it finish through the stream; cancel another
  await page.click('#nav a[data-screen="jobs"]');
  await ready("jobs");
  await page.selectOption("#prepass-dataset", "synth");
  await page.fill("#prepass-max", "2");
  const newJob = async (button = "#start-prepass") => {
    const before = await page.$$eval("#jobs tr", (trs) => trs.map((t) => t.getAttribute("data-job")));
    await page.click(button);
    await page.waitForFunction((b) => {
      const tr = document.querySelector("#jobs tr");
      return tr && !b.includes(tr.getAttribute("data-job"));
    }, before);
    return page.locator("#jobs tr").first().getAttribute("data-job");
  };
  const smallJob = await newJob();
  await page.waitForSelector(`#jobs tr[data-job="${smallJob}"][data-state="succeeded"]`);
  const progress = await page.locator(`#jobs tr[data-job="${smallJob}"] td`).nth(4).textContent();
  await noError("job");
  await shot("4-jobs-finished");
  await page.fill("#prepass-max", "0");
  const bigJob = await newJob();
  await page.waitForSelector(`#jobs tr[data-job="${bigJob}"][data-state="running"]`);
  await page.click(`#jobs tr[data-job="${bigJob}"] button.cancel`);
  await page.waitForSelector(`#jobs tr[data-job="${bigJob}"][data-state="cancelled"]`);
  await noError("cancel");
  await shot("4-jobs");
  log("jobs", { smallJob, progress: progress?.trim(), cancelled: bigJob });

  // 5. Calibration from the UI: a calibration job on the calibration dataset (the stack's own prepass of
  // each image, then the accept models), watched to the end through the stream; its report drawn from
  // the typed report.
  const calDataset = process.env.CAL_DATASET ?? "e2ecal";
  await page.selectOption("#cal-dataset", calDataset);
  await page.fill("#cal-max", "0");
  const calJob = await newJob("#start-calibration");
  const calRow = `#jobs tr[data-job="${calJob}"]`;
  await page.waitForSelector(`${calRow}[data-state="running"], ${calRow}[data-state="succeeded"]`);
  await page.waitForSelector(`${calRow}[data-state="succeeded"], ${calRow}[data-state="failed"]`);
  const calState = await page.getAttribute(calRow, "data-state");
  const calProgress = (await page.locator(`${calRow} td`).nth(4).textContent())?.trim();
  if (calState !== "succeeded") throw new Error(`calibration ${calJob}: ${await page.locator(`${calRow} td.msg`).textContent()}`);
  await noError("calibration job");
  await shot("4-jobs-calibration");
  await page.click(`${calRow} a.report`);
  await ready("calibration");
  await page.waitForSelector("#pr-curves path");
  const curves = await page.locator("#pr-curves path").count();
  const barsF1 = await page.locator("#f1-bars rect").count();
  const metricRows = await page.locator("#metrics tbody tr").count();
  const reportHash = await page.evaluate(() => location.hash);
  await noError("calibration");
  await shot("5-calibration");
  log("calibration", { job: calJob, progress: calProgress, reportHash, curves, f1Bars: barsF1, metricRows });

  // 5b. The calibration on the Image screen: choose it, prepass (cached by the calibration) with its
  // accept model, and move one class's threshold slider; the counts shown are recorded for the test to
  // check against the report's thresholds and the candidates' accept probabilities.
  await page.click('#nav a[data-screen="datasets"]');
  await ready("datasets");
  await page.click(`a[data-dataset="${calDataset}"]`);
  await ready("datasets");
  await page.locator("#thumbs a.thumb").first().click();
  await ready("image");
  const calImage = (await page.locator("#image-name").textContent())?.trim();
  await page.waitForSelector(`#calibration-select option[value="${calJob}"]`, { state: "attached" });
  await page.selectOption("#calibration-select", calJob);
  await page.waitForSelector("#threshold-sliders input[data-class]");
  await page.click("#run-prepass");
  await page.waitForSelector("#prepass-status[data-done]");
  await noError("calibrated prepass");
  const counts = () => page.evaluate(() => {
    const el = document.querySelector("#candidate-summary"), sum = el.textContent;
    const perClass = Object.fromEntries([...document.querySelectorAll("#threshold-sliders label.slider")].map((l) => {
      const input = l.querySelector("input"), count = l.querySelector(".class-count");
      return [input.dataset.class, { value: input.value, accepted: Number(count.dataset.accepted),
        total: Number(count.dataset.total) }];
    }));
    const num = (word) => Number(new RegExp(`(\\d+) ${word}`).exec(sum)?.[1] ?? NaN);
    return { accepted: num("accepted"), rejected: num("rejected"), candidates: num("candidates"),
      kept: el.dataset.kept === "" ? null : Number(el.dataset.kept), perClass };
  });
  const initial = await counts();
  // The class with the most candidates gets its slider moved: End and Home keys (1 and 0), then 0.5.
  const moved = Object.entries(initial.perClass).sort((a, b) => b[1].total - a[1].total)[0]?.[0];
  if (!moved || !initial.perClass[moved].total) throw new Error(`calibrated prepass: no candidates of a calibrated class: ${JSON.stringify(initial)}`);
  const slider = page.locator(`#threshold-sliders input[data-class="${moved}"]`);
  const settings = [];
  for (const key of ["End", "Home"]) {
    await slider.focus();
    await page.keyboard.press(key);
    await page.waitForFunction(([c, v]) => document.querySelector(`#threshold-sliders input[data-class="${c}"]`).value === v,
      [moved, key === "End" ? "1" : "0"]);
    settings.push({ key, ...(await counts()) });
  }
  await slider.evaluate((el) => {
    el.value = "0.5";
    el.dispatchEvent(new Event("input", { bubbles: true }));
  });
  settings.push({ key: "0.5", ...(await counts()) });
  await page.waitForFunction(() => document.querySelector("canvas#viewer").dataset.draws);
  await noError("threshold slider");
  await shot("3-image-calibrated");
  log("calibrated-image", { dataset: calDataset, image: calImage, job: calJob, moved, initial, settings });

  // 6. Glossaries: create, edit, delete
  await page.click('#nav a[data-screen="glossaries"]');
  await ready("glossaries");
  await page.fill("#new-glossary-name", "e2e glossary");
  await page.click("#new-glossary");
  await page.waitForSelector("#glossary-text");
  await page.fill("#glossary-text", "circle: ring, disc\nsquare: box");
  await page.click("#glossary-save");
  await page.waitForFunction(() => document.querySelector("#glossary-status")?.textContent?.startsWith("saved"));
  await page.fill("#glossary-text", "circle: ring, disc, round thing\nsquare: box\ntriangle: wedge");
  await page.click("#glossary-save");
  await page.waitForFunction(() => document.querySelectorAll("#glossary-terms tr").length === 3);
  await noError("glossary");
  await shot("6-glossaries");
  await page.goto(`${UI}#/glossaries`);
  await ready("glossaries");
  const listed = await page.locator('#glossaries a[data-glossary="e2e glossary"]').count();
  await page.click('#glossaries a[data-glossary="e2e glossary"]');
  await ready("glossaries");
  page.once("dialog", (d) => d.accept());
  await page.click("#glossary-delete");
  await page.waitForFunction(() => !document.querySelector('#glossaries a[data-glossary="e2e glossary"]')
    && document.body.dataset.ready === "glossaries");
  log("glossaries", { listedAfterSave: listed });

  // 7. Back/forward through the history, and a server error shows its reason
  await page.goBack();
  await ready("glossaries");
  const backHash = await page.evaluate(() => location.hash);
  await page.goForward();
  await ready("glossaries");
  await page.goto(`${UI}#/calibration/job-does-not-exist`);
  await ready("calibration");
  const shown = await errorText();
  if (!shown.includes("NOT_FOUND") || !shown.includes("JOB_NOT_FOUND")) throw new Error(`error banner: ${shown}`);
  await shot("7-error");
  log("history-and-errors", { backHash, error: shown });

  if (consoleErrors.length) throw new Error(`console errors: ${consoleErrors.join(" | ")}`);
  console.log(JSON.stringify({ ok: true, steps: done, screenshots: OUT }));
} catch (e) {
  await shot("failure").catch(() => {});
  console.log(JSON.stringify({ ok: false, error: String(e?.stack ?? e), steps: done, consoleErrors,
    banner: await errorText().catch(() => "") }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
