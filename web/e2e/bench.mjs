// Web UI benchmark in headless Chromium (run by benchmarks/web.py, which starts the stack):
//   first render of the image screen (cold page load -> image, ground truth and boxes drawn), and
//   redraw time with N candidates while a per-class threshold slider moves (input event -> decisions ->
//   redraw of what changed, flushed with a 1-pixel read so rasterisation is included), and a full redraw
//   of every outline (what a pan, zoom, source toggle or a large threshold jump costs; the image layer
//   itself is kept).
import { chromium } from "playwright-core";
import { loadCandidates } from "./candidates.mjs";

const UI = process.env.UI_URL;
const IMAGE = process.env.IMAGE_ROUTE; // e.g. #/datasets/synth/image/train/images/x.png
const RUNS = Number(process.env.RUNS ?? 5);
const N = Number(process.env.CANDIDATES ?? 2000);
const MOVES = Number(process.env.MOVES ?? 200);

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"] });
const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { n: s.length, median: +q(0.5).toFixed(2), p95: +q(0.95).toFixed(2), max: +s[s.length - 1].toFixed(2) };
};

const firstRender = [], inApp = [];
for (let i = 0; i < RUNS; i++) {
  const ctx = await browser.newContext({ viewport: { width: 1500, height: 1000 } });
  const page = await ctx.newPage();
  const t0 = Date.now();
  await page.goto(UI + IMAGE);
  await page.waitForSelector('body[data-ready="image"]', { timeout: 60000 });
  firstRender.push(Date.now() - t0);
  inApp.push(Number(await page.getAttribute("section[data-screen=image]", "data-first-render-ms")));
  if (i < RUNS - 1) await ctx.close();
}
const page = browser.contexts().at(-1).pages()[0];
await page.evaluate(loadCandidates, N);
const redraw = await page.evaluate((moves) => {
  const v = window.tatorViewer;
  const input = document.querySelector('#threshold-sliders input[data-class="circle"]');
  const g = document.querySelector("canvas#viewer").getContext("2d");
  const times = [];
  for (let k = 0; k < moves; k++) {
    const t0 = performance.now();
    input.value = String((k % 100) / 100);
    input.dispatchEvent(new Event("input"));
    v.draw();
    g.getImageData(0, 0, 1, 1);
    times.push(performance.now() - t0);
  }
  const full = [];
  for (let k = 0; k < 50; k++) {
    const t0 = performance.now();
    v.resetView();
    v.draw();
    g.getImageData(0, 0, 1, 1);
    full.push(performance.now() - t0);
  }
  return { times, full, accepted: document.querySelector("#candidate-summary").dataset.accepted };
}, MOVES);
await browser.close();
console.log(JSON.stringify({ first_render_ms: stats(firstRender), first_render_in_app_ms: stats(inApp),
  redraw_ms: stats(redraw.times), full_redraw_ms: stats(redraw.full), candidates: N, slider_moves: MOVES }));
