import { formatRoute } from "../logic/route";
import { type Ctx, h } from "../ui";

export async function renderGlossaries(ctx: Ctx, el: HTMLElement, name?: string): Promise<void> {
  el.append(h("h1", {}, "Glossaries"));
  const res = await ctx.call(ctx.api.listGlossaries({ pageSize: 1000 }));
  if (!res) return;
  const list = h("ul", { class: "list", id: "glossaries" }, res.glossaries.map((g) => h("li", {},
    h("a", { href: formatRoute({ screen: "glossaries", name: g.name }), "data-glossary": g.name }, g.name),
    h("span", { class: "muted" }, ` ${Object.keys(g.terms).length} keys · ${g.hash.slice(0, 10)}`))));
  const newName = h("input", { id: "new-glossary-name", placeholder: "new glossary name" });
  const create = h("button", { id: "new-glossary", onclick: () => {
    if (newName.value.trim()) ctx.go(formatRoute({ screen: "glossaries", name: newName.value.trim() }));
  } }, "New");
  el.append(h("div", { class: "cols" }, h("div", {}, list, h("p", {}, newName, " ", create)),
    h("div", { id: "glossary-editor" })));
  if (!name) return;
  const editor = el.querySelector<HTMLElement>("#glossary-editor")!;
  const existing = res.glossaries.find((g) => g.name === name);
  const text = h("textarea", { id: "glossary-text", rows: 14, cols: 60,
    placeholder: "circle: ring, disc\nsquare: box" }, existing?.text ?? "");
  const status = h("span", { class: "muted", id: "glossary-status" });
  const terms = h("div", { id: "glossary-terms" });
  const showTerms = (t: Record<string, { terms: string[] }>) => {
    terms.replaceChildren(h("table", { class: "grid" }, h("tbody", {}, Object.entries(t).map(([k, v]) =>
      h("tr", {}, h("th", {}, k), h("td", {}, v.terms.join(", ")))))));
  };
  if (existing) showTerms(existing.terms);
  const save = h("button", { id: "glossary-save", onclick: async () => {
    ctx.clearError();
    const out = await ctx.call(ctx.api.putGlossary({ name, text: text.value }));
    if (out?.glossary) {
      status.textContent = `saved (hash ${out.glossary.hash.slice(0, 10)})`;
      text.value = out.glossary.text;
      showTerms(out.glossary.terms);
    }
  } }, "Save");
  const del = h("button", { id: "glossary-delete", class: "danger", disabled: !existing, onclick: async () => {
    if (!confirm(`Delete glossary ${name}?`)) return;
    const out = await ctx.call(ctx.api.deleteGlossary({ name }));
    if (out) ctx.go(formatRoute({ screen: "glossaries" }));
  } }, "Delete");
  editor.append(h("h2", {}, name, existing ? "" : " (new)"), text, h("p", {}, save, " ", del, " ", status), terms);
}
