// Hash routes, so any static server can serve the app and back/forward just work.
export type Route =
  | { screen: "services" }
  | { screen: "datasets"; dataset?: string; page?: number }
  | { screen: "image"; dataset: string; image: string }
  | { screen: "jobs"; page?: number }
  | { screen: "calibration"; job?: string }
  | { screen: "glossaries"; name?: string };

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, "").split("/").filter((p) => p.length > 0).map(decodeURIComponent);
  const [head, a, b, ...rest] = parts;
  switch (head) {
    case "datasets":
      if (a && b === "image" && rest.length) return { screen: "image", dataset: a, image: rest.join("/") };
      if (a && b === "page") return { screen: "datasets", dataset: a, page: Math.max(0, parseInt(rest[0] ?? "0") || 0) };
      return a ? { screen: "datasets", dataset: a } : { screen: "datasets" };
    case "jobs":
      return a === "page" ? { screen: "jobs", page: Math.max(0, parseInt(b ?? "0") || 0) } : { screen: "jobs" };
    case "calibration":
      return a ? { screen: "calibration", job: a } : { screen: "calibration" };
    case "glossaries":
      return a ? { screen: "glossaries", name: [a, b, ...rest].filter(Boolean).join("/") } : { screen: "glossaries" };
    case "services":
    default:
      return { screen: "services" };
  }
}

export function formatRoute(r: Route): string {
  const enc = encodeURIComponent;
  switch (r.screen) {
    case "services":
      return "#/services";
    case "datasets":
      if (!r.dataset) return "#/datasets";
      return r.page ? `#/datasets/${enc(r.dataset)}/page/${r.page}` : `#/datasets/${enc(r.dataset)}`;
    case "image":
      // Image names are paths; keep their slashes readable.
      return `#/datasets/${enc(r.dataset)}/image/${r.image.split("/").map(enc).join("/")}`;
    case "jobs":
      return r.page ? `#/jobs/page/${r.page}` : "#/jobs";
    case "calibration":
      return r.job ? `#/calibration/${enc(r.job)}` : "#/calibration";
    case "glossaries":
      return r.name ? `#/glossaries/${enc(r.name)}` : "#/glossaries";
  }
}
