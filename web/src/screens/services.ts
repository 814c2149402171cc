import { ModelState } from "../gen/tator/common/v1/common_pb";
import { ServiceHealth, type ServiceModels } from "../gen/tator/orchestrator/v1/orchestrator_pb";
import { type Ctx, h } from "../ui";

export async function renderServices(ctx: Ctx, el: HTMLElement): Promise<void> {
  el.append(h("h1", {}, "Services"));
  // Every page; a service whose models span two pages comes back on both, so its models are joined.
  const services: ServiceModels[] = [];
  let pageToken = "";
  do {
    const res = await ctx.call(ctx.api.listModels({ pageSize: 1000, pageToken }));
    if (!res) return;
    for (const svc of res.services) {
      const last = services[services.length - 1];
      if (last && last.service === svc.service) last.models.push(...svc.models);
      else services.push(svc);
    }
    pageToken = res.nextPageToken;
  } while (pageToken);
  const rows = services.map((svc) => h("tr", { "data-service": svc.service },
    h("td", {}, svc.service),
    h("td", {}, svc.address),
    h("td", { class: svc.health === ServiceHealth.SERVING ? "ok" : "bad" }, ServiceHealth[svc.health] ?? "UNSPECIFIED"),
    h("td", {}, [...new Set(svc.models.map((m) => m.device).filter(Boolean))].join(", ") || "—"),
    h("td", {}, h("ul", { class: "models" }, svc.models.map((m) => h("li", {},
      h("code", {}, m.id), ` ${m.family} `,
      h("span", { class: "tag" }, ModelState[m.state].toLowerCase()),
      m.loaded ? h("span", { class: "tag ok" }, "loaded") : null,
      m.isDefault ? h("span", { class: "tag" }, "default") : null,
      m.reason ? h("span", { class: "muted" }, ` ${m.reason}`) : null))))));
  el.append(h("table", { class: "grid", id: "services" },
    h("thead", {}, h("tr", {}, ["service", "address", "health", "device", "models"].map((c) => h("th", {}, c)))),
    h("tbody", {}, rows)));
}
