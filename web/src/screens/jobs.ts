import { type Job, JobKind, JobState } from "../gen/tator/orchestrator/v1/orchestrator_pb";
import { eta, secondsOf, when } from "../logic/format";
import { formatRoute } from "../logic/route";
import { type Ctx, h } from "../ui";

const PAGE = 10;
const TERMINAL = new Set([JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.INTERRUPTED]);
const tokens: string[] = [""];

const stateName = (s: JobState) => JobState[s].toLowerCase();
const kindName = (k: JobKind) => JobKind[k].toLowerCase();

export async function renderJobs(ctx: Ctx, el: HTMLElement, page = 0): Promise<void> {
  el.append(h("h1", {}, "Jobs"));
  const datasets = (await ctx.call(ctx.api.listDatasets({ pageSize: 1000 })))?.datasets ?? [];
  const pick = (id: string) => h("select", { id }, datasets.map((d) => h("option", { value: d.id }, d.id)));
  const pDataset = pick("prepass-dataset"), cDataset = pick("cal-dataset");
  const pSplit = h("input", { id: "prepass-split", placeholder: "split (all)", size: 8 });
  const pMax = h("input", { id: "prepass-max", type: "number", min: 0, value: "4", size: 5 });
  const cMax = h("input", { id: "cal-max", type: "number", min: 0, value: "0", size: 5 });
  const started = async (p: Promise<{ job?: Job }>) => {
    ctx.clearError();
    const res = await ctx.call(p);
    if (res?.job) {
      tokens.length = 1;
      if (page === 0) await refresh();
      else ctx.go(formatRoute({ screen: "jobs" }));
    }
  };
  el.append(h("div", { class: "forms" },
    h("fieldset", {}, h("legend", {}, "Prepass job"), pDataset, " ", pSplit, " max images ", pMax, " ",
      h("button", { id: "start-prepass", onclick: () => started(ctx.api.startPrepassJob({
        datasetId: pDataset.value, split: pSplit.value.trim(), maxImages: Number(pMax.value) || 0 })) }, "Start")),
    h("fieldset", {}, h("legend", {}, "Calibration job"), cDataset, " max images ", cMax, " ",
      h("button", { id: "start-calibration", onclick: () => started(ctx.api.startCalibration({
        datasetId: cDataset.value, config: { maxImages: Number(cMax.value) || 0 } })) }, "Start"))));
  const body = h("tbody", { id: "jobs" });
  const pager = h("div", { class: "pager" });
  el.append(h("table", { class: "grid" }, h("thead", {}, h("tr", {},
    ["job", "kind", "dataset", "state", "progress", "message", "created", ""].map((c) => h("th", {}, c)))), body), pager);
  const watching = new Set<string>();

  async function refresh(): Promise<void> {
    while (tokens.length <= page) {
      const prev = await ctx.call(ctx.api.listJobs({ pageSize: PAGE, pageToken: tokens[tokens.length - 1] }));
      if (!prev?.nextPageToken) break;
      tokens.push(prev.nextPageToken);
    }
    const res = await ctx.call(ctx.api.listJobs({ pageSize: PAGE, pageToken: tokens[Math.min(page, tokens.length - 1)] }));
    if (!res) return;
    if (res.nextPageToken && tokens.length === page + 1) tokens.push(res.nextPageToken);
    body.replaceChildren(...res.jobs.map(row));
    pager.replaceChildren(
      h("button", { id: "jobs-prev", disabled: page === 0,
        onclick: () => ctx.go(formatRoute({ screen: "jobs", page: page - 1 })) }, "◀ newer"),
      ` page ${page + 1} `,
      h("button", { id: "jobs-next", disabled: !res.nextPageToken,
        onclick: () => ctx.go(formatRoute({ screen: "jobs", page: page + 1 })) }, "older ▶"));
    for (const job of res.jobs) if (!TERMINAL.has(job.state)) void watch(job.id);
  }

  function row(job: Job): HTMLTableRowElement {
    const tr = h("tr", { "data-job": job.id, "data-state": stateName(job.state) });
    fill(tr, job, "");
    return tr;
  }

  function fill(tr: HTMLTableRowElement, job: Job, image: string): void {
    tr.dataset.state = stateName(job.state);
    const frac = job.total > 0 ? job.done / job.total : 0;
    const running = !TERMINAL.has(job.state);
    tr.replaceChildren(
      h("td", {}, h("code", {}, job.id)),
      h("td", {}, kindName(job.kind)),
      h("td", {}, job.datasetId),
      h("td", { class: `state ${stateName(job.state)}` }, stateName(job.state)),
      h("td", {}, h("progress", { max: 1, value: frac }), ` ${job.done}/${job.total}`,
        running && secondsOf(job.eta) > 0 ? h("span", { class: "muted" }, ` ETA ${eta(secondsOf(job.eta))}`) : null),
      h("td", { class: "msg" }, job.error || (image ? `${image}: ` : "") + job.message),
      h("td", {}, when(secondsOf(job.createTime))),
      h("td", {},
        running ? h("button", { class: "cancel", onclick: async () => {
          const res = await ctx.call(ctx.api.cancelJob({ jobId: job.id }));
          if (res?.job) tr.querySelector(".msg")!.textContent = res.job.message;
        } }, "Cancel") : null,
        job.kind === JobKind.CALIBRATION && job.state === JobState.SUCCEEDED
          ? h("a", { href: formatRoute({ screen: "calibration", job: job.id }), class: "report" }, "report") : null));
  }

  async function watch(jobId: string): Promise<void> {
    if (watching.has(jobId)) return;
    watching.add(jobId);
    try {
      for await (const ev of ctx.api.watchJob({ jobId }, { signal: ctx.signal })) {
        const tr = body.querySelector<HTMLTableRowElement>(`tr[data-job="${jobId}"]`);
        if (tr && ev.job) fill(tr, ev.job, ev.image);
      }
    } catch (e) {
      if (!ctx.signal.aborted) ctx.showError(e);
    } finally {
      watching.delete(jobId);
    }
  }

  await refresh();
}
