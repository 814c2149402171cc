"""The import graph runs one way: tator_core <- services <- CLI / fixtures, and no service imports another.

Read statically (ast), so a test run imports nothing heavy and a lazy import inside a function counts
as much as one at the top. A dotted module name in a string (`"svc_detector.tiny"`, the argument of
`importlib.import_module`) counts as an import too: hiding an arrow in a string does not remove it.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("svc_detector", "svc_sam3", "svc_qwen", "svc_classifier", "svc_orchestrator")
PACKAGES = ("tator_core", "tator_cli", "tator_fixtures", *SERVICES)
#: Code that must stay small enough to read in one sitting (tests are exempt: a test file grows with
#: the cases of one feature).
SIZE_CHECKED = (*PACKAGES, "scripts", "benchmarks")
MAX_LINES = 400
#: What code outside a service may import of it: the package itself (the names its `__init__` defines)
#: and `tiny`, the builder of the service's seeded fixture model.
PUBLIC_SERVICE_MODULES = {"", "tiny"}
_MODULE_STRING = re.compile(r"^(?:svc_\w+|tator_\w+)(?:\.\w+)+$")


@dataclass(frozen=True)
class Edge:
    source: str  # file, relative to the repo root
    line: int
    target: str  # dotted module (or module.name) imported

    @property
    def top(self) -> str:
        return self.target.split(".")[0]

    def __str__(self) -> str:
        return f"{self.source}:{self.line} imports {self.target}"


def _python_files(top: str) -> list[Path]:
    return sorted(p for p in (ROOT / top).rglob("*.py") if "gen" not in p.relative_to(ROOT).parts)


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve_relative(path: Path, node: ast.ImportFrom) -> str:
    package = _module_of(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
    return ".".join([*base, *([node.module] if node.module else [])])


@functools.cache
def edges(top: str) -> list[Edge]:
    """Every import (and dotted module string) in the package `top`, as absolute module names."""
    out: list[Edge] = []
    for path in _python_files(top):
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(), filename=rel)):
            if isinstance(node, ast.Import):
                out += [Edge(rel, node.lineno, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                module = _resolve_relative(path, node) if node.level else (node.module or "")
                out += [Edge(rel, node.lineno, f"{module}.{alias.name}") for alias in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_STRING.match(node.value):
                out.append(Edge(rel, node.lineno, node.value))
    return out


def _service_internal(target: str) -> bool:
    """A module of a service other than its public entry points."""
    parts = target.split(".")
    if parts[0] not in SERVICES:
        return False
    if len(parts) == 1 or parts[1] in PUBLIC_SERVICE_MODULES:
        return False
    # `from svc_x import name` arrives as `svc_x.name`: a name the package's __init__ defines is public.
    init = (ROOT / parts[0] / "__init__.py").read_text()
    defined = {n.name for n in ast.parse(init).body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    defined |= {t.id for n in ast.parse(init).body if isinstance(n, ast.Assign)
                for t in n.targets if isinstance(t, ast.Name)}
    return not (len(parts) == 2 and parts[1] in defined)


def test_the_reader_sees_every_kind_of_import() -> None:
    """The checks below are only as good as the edge reader: it must see lazy, relative and string imports."""
    found = {e.target for e in edges("tator_fixtures")}
    assert "svc_detector.tiny" in found  # a builder named in a string
    assert any(t.startswith("tator_core.") for t in found)
    assert _service_internal("svc_orchestrator.prepass.cache.read_meta")
    assert not _service_internal("svc_orchestrator.read_cache_meta")
    assert not _service_internal("svc_qwen.tiny")


def test_tator_core_imports_no_service_cli_or_fixtures() -> None:
    bad = [e for e in edges("tator_core") if e.top in (*SERVICES, "tator_cli", "tator_fixtures")]
    assert not bad, "\n".join(map(str, bad))


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_service_and_no_cli(service: str) -> None:
    bad = [e for e in edges(service)
           if (e.top in SERVICES and e.top != service) or e.top in ("tator_cli", "tator_fixtures")]
    assert not bad, "\n".join(map(str, bad))


def test_fixtures_import_no_cli_and_only_public_service_entry_points() -> None:
    bad = [e for e in edges("tator_fixtures") if e.top == "tator_cli" or _service_internal(e.target)]
    assert not bad, "\n".join(map(str, bad))


def test_only_the_serve_bootstrap_wires_the_interceptor() -> None:
    """The interceptor is transport; domain code that needs its request validation uses
    tator_core.validation instead."""
    bad = [e for p in PACKAGES for e in edges(p)
           if e.target.startswith("tator_core.interceptors") and e.source != "tator_core/server.py"]
    assert not bad, "\n".join(map(str, bad))


def test_the_cli_talks_to_services_only_over_grpc() -> None:
    bad = [e for e in edges("tator_cli") if e.top in SERVICES]
    assert not bad, "\n".join(map(str, bad))


@pytest.mark.parametrize("package", PACKAGES)
def test_no_private_name_is_imported_from_another_module(package: str) -> None:
    """`_name` is private to its module; code that needs it elsewhere makes it public (or moves it)."""
    bad = [e for e in edges(package) if e.top in PACKAGES and e.target.rsplit(".", 1)[-1].startswith("_")
           and not e.target.rsplit(".", 1)[-1].startswith("__")]
    assert not bad, "\n".join(map(str, bad))


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines())
             for top in SIZE_CHECKED for p in _python_files(top)}
    over = {path: n for path, n in sizes.items() if n > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines: {over}"


#: Orchestrator modules that may import generated messages: the transport, the conversion package and the
#: typed clients of the model services (their answers are the model services' own messages; the callers
#: convert what they keep).
ORCHESTRATOR_PROTO_LAYER = ("svc_orchestrator/server.py", "svc_orchestrator/convert/", "svc_orchestrator/clients.py")
#: Modules still working on messages, to be moved onto plain types; the test below fails when one of them
#: no longer needs its entry, so the list only shrinks.
ORCHESTRATOR_PROTO_PENDING = {
    "svc_orchestrator/app.py",
    "svc_orchestrator/prepass/cache.py", "svc_orchestrator/prepass/config.py", "svc_orchestrator/prepass/context.py",
    "svc_orchestrator/prepass/flow.py", "svc_orchestrator/prepass/plan.py", "svc_orchestrator/prepass/prompts.py",
    "svc_orchestrator/prepass/provenance.py", "svc_orchestrator/prepass/replay.py", "svc_orchestrator/prepass/runner.py",
    "svc_orchestrator/prepass/sharding.py",
}


def _imports_messages(e: Edge) -> bool:
    return any(part.endswith("_pb2") or part.endswith("_pb2_grpc") for part in e.target.split("."))


def test_the_orchestrator_works_on_plain_types_behind_one_conversion_layer() -> None:
    """Only the transport, the conversion package and the typed clients import generated messages;
    the domain (catalogs, calibration, ...) gets plain Python objects from them."""
    importing = {e.source for e in edges("svc_orchestrator") if _imports_messages(e)}
    bad = sorted(p for p in importing - ORCHESTRATOR_PROTO_PENDING if not p.startswith(ORCHESTRATOR_PROTO_LAYER))
    assert not bad, f"modules importing generated messages outside the conversion layer: {bad}"
    stale = sorted(ORCHESTRATOR_PROTO_PENDING - importing)
    assert not stale, f"no longer import messages; drop them from ORCHESTRATOR_PROTO_PENDING: {stale}"


def test_the_message_check_sees_message_imports() -> None:
    assert _imports_messages(Edge("x.py", 1, "tator_core.gen.tator.orchestrator.v1.orchestrator_pb2"))
    assert _imports_messages(Edge("x.py", 1, "google.protobuf.timestamp_pb2.Timestamp"))
    assert not _imports_messages(Edge("x.py", 1, "svc_orchestrator.calibration.inputs"))
