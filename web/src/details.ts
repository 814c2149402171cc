// The provenance panel of one prepass candidate: its atoms (source, model, window, prompt and origin,
// score) and the classifier's probability vector as bars.
import { AtomPass, type Candidate, type PrepassResult, PromptOriginKind } from "./gen/tator/orchestrator/v1/orchestrator_pb";
import { sourceColor, sourceName } from "./logic/colors";
import { promptText } from "./logic/format";
import { h } from "./ui";

export function candidateDetails(r: PrepassResult, c: Candidate): HTMLElement {
  const atoms = new Map(r.atoms.map((a) => [a.atomId, a]));
  const probs = c.probabilities;
  const maxP = Math.max(...probs, 1e-9);
  return h("div", {},
    h("h3", {}, `#${c.index} ${c.label}`),
    h("p", {}, `score ${c.score.toFixed(3)} · primary `, h("b", { style: `color:${sourceColor(sourceName(c.sourcePrimary))}` },
      sourceName(c.sourcePrimary)), ` · sources ${c.sources.map(sourceName).join(", ")}`),
    c.acceptProb !== undefined ? h("p", { id: "accept-prob" }, `accept probability ${c.acceptProb.toFixed(3)}`) : null,
    h("p", { class: "muted" }, `box ${[c.box?.x1, c.box?.y1, c.box?.x2, c.box?.y2].map((v) => (v ?? 0).toFixed(0)).join(", ")}`),
    h("h4", {}, "Atoms (provenance)"),
    h("table", { class: "grid small", id: "atoms" }, h("thead", {}, h("tr", {},
      ["atom", "source", "model", "run", "window", "prompt", "origin", "score"].map((x) => h("th", {}, x)))),
    h("tbody", {}, c.atomIds.map((id) => {
      const a = atoms.get(id);
      const d = a?.detection;
      return h("tr", {}, h("td", {}, id), h("td", {}, d ? sourceName(d.source) : ""), h("td", {}, d?.modelId ?? ""),
        h("td", {}, a ? (AtomPass[a.passKind] ?? "").toLowerCase() : ""), h("td", {}, d?.window?.name || "full"), h("td", {}, (d?.prompts ?? []).map(promptText).join(", ")),
        h("td", {}, (a?.prompts ?? []).map((p) => (PromptOriginKind[p.kind] ?? "").toLowerCase()).join(", ")), h("td", {}, (d?.score ?? 0).toFixed(3)));
    }))),
    h("h4", {}, `Classifier: ${c.classifierLabel || "—"} ${c.classifierScore ? c.classifierScore.toFixed(3) : ""}`),
    c.classifierError ? h("p", { class: "bad" }, c.classifierError) : null,
    h("div", { class: "bars", id: "prob-bars" }, probs.map((p, i) => h("div", { class: "bar" },
      h("span", { class: "bar-label" }, r.classifierClasses[i] ?? String(i)),
      h("span", { class: "bar-fill", style: `width:${(100 * p / maxP).toFixed(1)}%` }),
      h("span", { class: "bar-value" }, p.toFixed(3))))));
}
