// Client-side caches. Images are content-addressed (sha256), so a blob URL per (sha256, max side)
// is valid for the whole session; a dataset's image index is read once, page by page.
import type { DatasetImage } from "./gen/tator/orchestrator/v1/orchestrator_pb";
import type { Ctx } from "./ui";

const blobs = new Map<string, Promise<string | undefined>>();
const indexes = new Map<string, Promise<DatasetImage[] | undefined>>();
const MAX_BLOBS = 2000;

export function imageUrl(ctx: Ctx, dataset: string, img: { sha256: string; name: string }, maxSide: number
): Promise<string | undefined> {
  const key = `${img.sha256}:${maxSide}`;
  let hit = blobs.get(key);
  if (!hit) {
    hit = ctx.call(ctx.api.getImage({ datasetId: dataset, image: { case: "name", value: img.name }, maxSide }))
      .then((r) => (r ? URL.createObjectURL(new Blob([r.data as BlobPart], { type: r.mimeType })) : undefined));
    blobs.set(key, hit);
    if (blobs.size > MAX_BLOBS) {
      const [oldest, url] = blobs.entries().next().value as [string, Promise<string | undefined>];
      blobs.delete(oldest);
      void url.then((u) => u && URL.revokeObjectURL(u));
    }
  }
  return hit;
}

export function datasetIndex(ctx: Ctx, dataset: string): Promise<DatasetImage[] | undefined> {
  let hit = indexes.get(dataset);
  if (!hit) {
    hit = (async () => {
      const all: DatasetImage[] = [];
      let pageToken = "";
      do {
        const page = await ctx.call(ctx.api.listDatasetImages({ datasetId: dataset, pageSize: 500, pageToken }));
        if (!page) return undefined;
        all.push(...page.images);
        pageToken = page.nextPageToken;
      } while (pageToken);
      return all;
    })();
    indexes.set(dataset, hit);
    void hit.then((v) => v || indexes.delete(dataset));
  }
  return hit;
}
