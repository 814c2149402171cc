// Where a slider redraw's time goes (run by `benchmarks/web.py --profile`): the same 2,000 seeded
// candidates and slider moves as bench.mjs, with each move split into its phases (input handler:
// decisions and counts; paint: pixels in memory; upload: putImageData; flush: a 1-pixel read) and a
// Chromium trace for the garbage collections that overlap each move. Moves over 16 ms are summed per
// phase, so a slow tail shows whether it is GC, the upload, or CPU work stretched by a busy machine.
// Then the same moves one per animation frame, as a dragged slider sends them: the renderer's main-thread
// work between two moves (the input handler, the viewer's frame callback, style, layout and paint of the
// page) from the trace, to see whether the page's DOM updates cost more than the canvas.
import { chromium } from "playwright-core";
import { loadCandidates } from "./candidates.mjs";

const UI = process.env.UI_URL, IMAGE = process.env.IMAGE_ROUTE;
const N = Number(process.env.CANDIDATES ?? 2000), MOVES = Number(process.env.MOVES ?? 400);
const FRAMES = Number(process.env.FRAMES ?? 120);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"] });
const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
await page.goto(UI + IMAGE);
await page.waitForSelector('body[data-ready="image"]', { timeout: 60000 });
await page.evaluate(loadCandidates, N);
await page.evaluate(() => window.tatorViewer.draw());
await browser.startTracing(page, { categories: ["toplevel", "devtools.timeline", "v8", "blink.user_timing"] });
const rows = await page.evaluate((moves) => {
  const v = window.tatorViewer;
  const input = document.querySelector('#threshold-sliders input[data-class="circle"]');
  const g = document.querySelector("canvas#viewer").getContext("2d");
  const proto = CanvasRenderingContext2D.prototype, put = proto.putImageData;
  let upload = 0;
  proto.putImageData = function (...a) {
    const t = performance.now();
    put.apply(this, a);
    upload += performance.now() - t;
  };
  const out = [];
  for (let k = 0; k < moves; k++) {
    performance.mark(`s${k}`);
    const t0 = performance.now();
    input.value = String((k % 100) / 100);
    input.dispatchEvent(new Event("input"));
    const t1 = performance.now();
    upload = 0;
    v.draw();
    const t2 = performance.now();
    g.getImageData(0, 0, 1, 1);
    const t3 = performance.now();
    performance.mark(`e${k}`);
    out.push({ total: t3 - t0, handler: t1 - t0, paint: t2 - t1 - upload, upload, flush: t3 - t2 });
  }
  proto.putImageData = put;
  return out;
}, MOVES);
await page.evaluate(async (frames) => {
  const input = document.querySelector('#threshold-sliders input[data-class="square"]');
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  for (let k = 0; k < frames; k++) {
    await frame();
    performance.mark(`f${k}`);
    input.value = String((k % 100) / 100);
    input.dispatchEvent(new Event("input"));
  }
  await frame();
  await frame();
  performance.mark(`f${frames}`);
}, FRAMES);
const events = JSON.parse((await browser.stopTracing()).toString()).traceEvents;
await browser.close();
const marks = {};
let main;
for (const e of events) {
  if (/^[sef]\d+$/.test(e.name)) {
    marks[e.name] = e.ts;
    main = { pid: e.pid, tid: e.tid };
  }
}
const gcs = events.filter((e) => e.ph === "X" && /^(MinorGC|MajorGC)$/.test(e.name));
rows.forEach((r, k) => {
  const s = marks[`s${k}`], e = marks[`e${k}`];
  r.gc = gcs.filter((g) => g.ts < e && g.ts + g.dur > s)
    .reduce((a, g) => a + (Math.min(e, g.ts + g.dur) - Math.max(s, g.ts)) / 1000, 0);
});
const keys = ["total", "handler", "paint", "upload", "flush", "gc"];
const q = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return +s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(2);
};
const slow = rows.filter((r) => r.total > 16);
// Per frame-driven move: main-thread time overlapping [f_k, f_k+1) (top-level tasks) and by kind of work.
// The moves are dispatched from animation-frame callbacks, so `script` (frame callbacks) holds the input
// handler and the viewer's draw; `other` is the rest of the tasks (scheduling, tracing itself).
const KINDS = { script: /^FireAnimationFrame$/, style: /^UpdateLayoutTree$/, layout: /^Layout$/,
  paint: /^(PrePaint|Paint|Layerize)$/ };
const onMain = events.filter((e) => e.ph === "X" && main && e.pid === main.pid && e.tid === main.tid);
const tasks = onMain.filter((e) => e.name === "ThreadControllerImpl::RunTask");
const within = (list, s, e) => list.reduce((a, g) => a + Math.max(0, Math.min(e, g.ts + g.dur) - Math.max(s, g.ts)) / 1000, 0);
const frameRows = [];
for (let k = 0; k < FRAMES; k++) {
  const s = marks[`f${k}`], e = marks[`f${k + 1}`];
  if (s === undefined || e === undefined) continue;
  const row = { busy: within(tasks, s, e) };
  for (const [kind, re] of Object.entries(KINDS)) row[kind] = within(onMain.filter((x) => re.test(x.name)), s, e);
  row.other = Math.max(0, row.busy - row.script - row.style - row.layout - row.paint);
  frameRows.push(row);
}
const fkeys = ["busy", ...Object.keys(KINDS), "other"];
console.log(JSON.stringify({
  moves: rows.length, candidates: N,
  median_ms: Object.fromEntries(keys.map((k) => [k, q(rows.map((r) => r[k]), 0.5)])),
  p95_ms: Object.fromEntries(keys.map((k) => [k, q(rows.map((r) => r[k]), 0.95)])),
  over_16ms: slow.length,
  over_16ms_sum_ms: Object.fromEntries(keys.map((k) => [k, +slow.reduce((a, r) => a + r[k], 0).toFixed(1)])),
  per_frame: { moves: frameRows.length,
    median_ms: Object.fromEntries(fkeys.map((k) => [k, frameRows.length ? q(frameRows.map((r) => r[k]), 0.5) : null])),
    p95_ms: Object.fromEntries(fkeys.map((k) => [k, frameRows.length ? q(frameRows.map((r) => r[k]), 0.95) : null])) },
  gc: { minor: gcs.filter((g) => g.name === "MinorGC").length, major: gcs.filter((g) => g.name === "MajorGC").length,
    ms: +gcs.reduce((a, g) => a + g.dur / 1000, 0).toFixed(1) },
}));
