import { ModelState } from "../gen/tator/common/v1/common_pb";
import { ServiceHealth } from "../gen/tator/orchestrator/v1/orchestrator_pb";
import { type Ctx, h } from "../ui";

export async function renderServices(ctx: Ctx, el: HTMLElement): Promise<void> {
  el.append(h("h1", {}, "Services"));
  const res = await ctx.call(ctx.api.listModels({}));
  if (!res) return;
  const rows = res.services.map((svc) => h("tr", { "data-service": svc.service },
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
