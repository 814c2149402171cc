import "./style.css";
import { apiUrl, type Api, makeApi } from "./api";
import { parseRoute, type Route } from "./logic/route";
import { renderCalibration } from "./screens/calibration";
import { renderDatasets } from "./screens/datasets";
import { renderGlossaries } from "./screens/glossaries";
import { renderImage } from "./screens/image";
import { renderJobs } from "./screens/jobs";
import { renderServices } from "./screens/services";
import { makeCtx } from "./ui";

let api: Api;
let leave: AbortController | null = null;
let cleanup: (() => void) | void;
let seq = 0;

async function render(): Promise<void> {
  const route: Route = parseRoute(location.hash);
  leave?.abort();
  if (cleanup) cleanup();
  cleanup = undefined;
  leave = new AbortController();
  const mine = ++seq;
  const ctx = makeCtx(api, leave.signal);
  ctx.clearError();
  const app = document.getElementById("app")!;
  const el = document.createElement("section");
  el.className = `screen ${route.screen}`;
  el.dataset.screen = route.screen;
  app.replaceChildren(el);
  const navScreen = route.screen === "image" ? "datasets" : route.screen;
  document.querySelectorAll<HTMLAnchorElement>("#nav a").forEach((a) =>
    a.classList.toggle("active", a.dataset.screen === navScreen));
  document.body.dataset.screen = route.screen;
  delete document.body.dataset.ready;
  switch (route.screen) {
    case "services":
      await renderServices(ctx, el);
      break;
    case "datasets":
      await renderDatasets(ctx, el, route.dataset, route.page ?? 0);
      break;
    case "image":
      cleanup = await renderImage(ctx, el, route.dataset, route.image);
      break;
    case "jobs":
      await renderJobs(ctx, el, route.page ?? 0);
      break;
    case "calibration":
      await renderCalibration(ctx, el, route.job);
      break;
    case "glossaries":
      await renderGlossaries(ctx, el, route.name);
      break;
  }
  // Tests and benchmarks wait for this: the screen has its data.
  if (mine === seq) document.body.dataset.ready = route.screen;
}

const SCREEN_KEYS: Record<string, string> = { s: "#/services", d: "#/datasets", J: "#/jobs", c: "#/calibration",
  l: "#/glossaries" };

async function main(): Promise<void> {
  api = makeApi(await apiUrl());
  window.addEventListener("hashchange", () => void render());
  document.addEventListener("keydown", (e) => {
    if (e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement ||
      e.target instanceof HTMLSelectElement || e.ctrlKey || e.metaKey || e.altKey) return;
    const to = SCREEN_KEYS[e.key];
    if (to && document.body.dataset.screen !== "image") location.hash = to;
  });
  if (!location.hash) history.replaceState(null, "", "#/services");
  await render();
}

void main();
