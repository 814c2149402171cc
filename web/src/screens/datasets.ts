import { formatRoute } from "../logic/route";
import { imageUrl } from "../images";
import { type Ctx, h, pool } from "../ui";

const PAGE = 24;
const THUMB = 160;

export async function renderDatasets(ctx: Ctx, el: HTMLElement, dataset?: string, page = 0): Promise<void> {
  el.append(h("h1", {}, "Datasets"));
  const res = await ctx.call(ctx.api.listDatasets({ pageSize: 1000 }));
  if (!res) return;
  el.append(h("table", { class: "grid", id: "datasets" },
    h("thead", {}, h("tr", {}, ["dataset", "layout", "images", "splits", "boxes", "labelmap"].map((c) => h("th", {}, c)))),
    h("tbody", {}, res.datasets.map((d) => h("tr", { class: d.id === dataset ? "selected" : "" },
      h("td", {}, h("a", { href: formatRoute({ screen: "datasets", dataset: d.id }), "data-dataset": d.id }, d.id)),
      h("td", {}, d.layout),
      h("td", {}, d.imageCount),
      h("td", {}, Object.entries(d.imagesPerSplit).map(([k, v]) => `${k} ${v}`).join(", ")),
      h("td", {}, d.annotationCount),
      h("td", {}, d.labelmap.join(", ")))))));
  if (!dataset) return;
  await renderGrid(ctx, el, dataset, page);
}

// Pages are walked with the server's tokens; the tokens seen so far are kept so a page number in
// the URL (back/forward) is reached without refetching earlier pages twice.
const tokens = new Map<string, string[]>();

async function tokenFor(ctx: Ctx, dataset: string, page: number): Promise<string | undefined> {
  const known = tokens.get(dataset) ?? [""];
  tokens.set(dataset, known);
  while (known.length <= page) {
    const res = await ctx.call(ctx.api.listDatasetImages({ datasetId: dataset, pageSize: PAGE,
      pageToken: known[known.length - 1] }));
    if (!res || !res.nextPageToken) return undefined;
    known.push(res.nextPageToken);
  }
  return known[page];
}

async function renderGrid(ctx: Ctx, el: HTMLElement, dataset: string, page: number): Promise<void> {
  const token = await tokenFor(ctx, dataset, page);
  if (token === undefined) return;
  const res = await ctx.call(ctx.api.listDatasetImages({ datasetId: dataset, pageSize: PAGE, pageToken: token }));
  if (!res) return;
  const known = tokens.get(dataset)!;
  if (res.nextPageToken && known.length === page + 1) known.push(res.nextPageToken);
  const pages = Math.max(1, Math.ceil(res.totalSize / PAGE));
  const nav = h("div", { class: "pager" },
    h("button", { id: "prev-page", disabled: page === 0,
      onclick: () => ctx.go(formatRoute({ screen: "datasets", dataset, page: page - 1 })) }, "◀ prev"),
    ` page ${page + 1} of ${pages} (${res.totalSize} images) `,
    h("button", { id: "next-page", disabled: !res.nextPageToken,
      onclick: () => ctx.go(formatRoute({ screen: "datasets", dataset, page: page + 1 })) }, "next ▶"));
  const cells = res.images.map((img) => {
    const pic = h("img", { alt: img.name, width: THUMB, height: Math.round(THUMB * img.height / Math.max(img.width, 1)) });
    const link = h("a", { class: "thumb", href: formatRoute({ screen: "image", dataset, image: img.name }),
      "data-image": img.name, title: img.name },
      pic, h("span", {}, `${img.name.split("/").pop()} · ${img.groundTruth.length} gt`));
    return { img, pic, link };
  });
  el.append(h("h2", {}, `${dataset}`), nav, h("div", { class: "thumbs", id: "thumbs" }, cells.map((c) => c.link)));
  await pool(cells, 6, async (c) => {
    const url = await imageUrl(ctx, dataset, c.img, THUMB);
    if (url && !ctx.signal.aborted) c.pic.src = url;
  });
}
