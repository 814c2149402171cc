// The benchmarks' synthetic prepass result, loaded into the live viewer: n seeded candidates (boxes in a
// 600x440 area, three classes, four sources, uniform scores and accept probabilities) and a threshold
// of 0.5 per class. Runs inside the page: pass it to page.evaluate, which sends its source text.
export function loadCandidates(n) {
  const v = window.tatorViewer;
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const labels = ["circle", "square", "triangle"], sources = ["yolo", "rfdetr", "sam3_text", "sam3_similarity"];
  const candidates = Array.from({ length: n }, (_, i) => {
    const x = rnd() * 600, y = rnd() * 440, w = 8 + rnd() * 60, hh = 8 + rnd() * 60;
    const src = sources[i % sources.length];
    return { index: i, box: { x1: x, y1: y, x2: x + w, y2: y + hh }, label: labels[i % 3], score: rnd(),
      sourcePrimary: src, sources: [src], scoreBySource: {}, atomIds: [], probabilities: [], acceptProb: rnd() };
  });
  v.setResult({ candidates, atoms: [], classifierClasses: [], warnings: [], stages: [] });
  v.setThresholds({ model: "bench", byClass: new Map(labels.map((l) => [l, 0.5])) });
}
