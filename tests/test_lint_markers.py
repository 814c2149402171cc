"""Every lint or type-check suppression says why, on its own line: `# noqa: CODE (reason)` (or
`- reason`) and `# type: ignore[code]  # reason` (mypy reads nothing but a comment after its marker). A bare marker hides a finding without telling the next reader
whether it is still needed."""

from __future__ import annotations

import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOPS = ("tator_core", "tator_cli", "tator_fixtures", "svc_detector", "svc_sam3", "svc_qwen", "svc_classifier",
        "svc_orchestrator", "scripts", "benchmarks", "tests")
_MARKER = re.compile(r"#\s*(noqa|type:\s*ignore)\b(.*)$")
_WITH_REASON = re.compile(r"^(?::\s*[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*\s*(?:\(|-|—|#)\s*\S.*|\[[-a-z, ]+\]\s+#\s*\S.*)")


def bare_markers(path: Path) -> list[str]:
    out = []
    with path.open("rb") as f:
        for tok in tokenize.tokenize(f.readline):
            if tok.type != tokenize.COMMENT:
                continue
            m = _MARKER.search(tok.string)
            if m and not _WITH_REASON.match(m.group(2)):
                out.append(f"{path.relative_to(ROOT)}:{tok.start[0]}: {tok.string}")
    return out


def test_the_reason_pattern() -> None:
    assert _WITH_REASON.match(": F401 (importing registers every step)")
    assert _WITH_REASON.match("[arg-type]  # grpc stubs type this too narrowly")
    assert not _WITH_REASON.match("[arg-type] (mypy rejects text after the marker)")
    assert _WITH_REASON.match(": SIM115 - the child owns it")
    assert not _WITH_REASON.match(": F401")
    assert not _WITH_REASON.match("[arg-type]")
    assert not _WITH_REASON.match("")


def test_every_suppression_carries_a_reason() -> None:
    files = [p for top in TOPS for p in (ROOT / top).rglob("*.py") if "gen" not in p.relative_to(ROOT).parts]
    bare = [line for p in files for line in bare_markers(p)]
    assert not bare, "\n".join(bare)


def test_no_comment_cites_a_document_outside_the_repository() -> None:
    """A comment says its reason itself; a section number of a document the reader does not have
    says nothing."""
    cites = re.compile(r"spec\s?§|§\s?\d|shared/spec/")
    files = [p for top in TOPS for p in (ROOT / top).rglob("*.py") if "gen" not in p.relative_to(ROOT).parts]
    found = [f"{p.relative_to(ROOT)}:{n}" for p in files if p != Path(__file__)
             for n, line in enumerate(p.read_text().splitlines(), 1) if cites.search(line)]
    assert not found, found
