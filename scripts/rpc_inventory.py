"""Every RPC of every service (from protos/) and who calls it: the CLI, the orchestrator's clients,
the regression fixtures, tests, benchmarks and load configs, and the web UI.

    python scripts/rpc_inventory.py          # table; RPCs no client calls are listed at the end
    python scripts/rpc_inventory.py --json   # one JSON object

A caller is a file that names the RPC the way its language calls it (Python: `"Detect"` given to
ServiceClient.call/stream, or `stub.Detect(`; TypeScript: `client.detect(`; ghz: the full method
name) and also names the service (its pb2 module, stub or full name), so `ListModels`, which the
orchestrator and the shared model management both have, is counted per service. The exit code is 0 either way: this is a report.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_SERVICE = re.compile(r"^service\s+(\w+)\s*\{(.*?)^\}", re.S | re.M)
_RPC = re.compile(r"^\s*rpc\s+(\w+)\s*\(", re.M)
_PACKAGE = re.compile(r"^package\s+([\w.]+)\s*;", re.M)

#: Who calls, and where their code lives (generated code and the services' own servers excluded).
CALLERS: dict[str, tuple[str, ...]] = {
    "cli": ("tator_cli/**/*.py",),
    "orchestrator": ("svc_orchestrator/**/*.py",),
    "fixtures": ("tator_fixtures/**/*.py",),
    "tests": ("tests/**/*.py",),
    "benchmarks": ("benchmarks/**/*.py", "deploy/ghz/*.json"),
    "ui": ("web/src/**/*.ts", "web/src/**/*.tsx"),
}


@dataclass(frozen=True)
class Rpc:
    service: str   # DetectorService
    package: str   # tator.detector.v1
    name: str      # Detect

    @property
    def full(self) -> str:
        return f"{self.package}.{self.service}/{self.name}"

    @property
    def module(self) -> str:
        """The generated Python module's stem, e.g. detector_pb2."""
        return f"{self.package.split('.')[1]}_pb2"


def read_rpcs(protos: Path = ROOT / "protos") -> list[Rpc]:
    out = []
    for path in sorted(protos.rglob("*.proto")):
        text = path.read_text()
        package = _PACKAGE.search(text)
        for svc in _SERVICE.finditer(text):
            out += [Rpc(svc.group(1), package.group(1) if package else "", m.group(1))
                    for m in _RPC.finditer(svc.group(2))]
    return out


def _files(patterns: tuple[str, ...]) -> list[Path]:
    files = {p for pat in patterns for p in ROOT.glob(pat)}
    return sorted(p for p in files if p.is_file() and "gen" not in p.relative_to(ROOT).parts
                  and p.name != "server.py" and "node_modules" not in p.parts)


def _calls(rpc: Rpc, path: Path, text: str) -> bool:
    if path.suffix == ".json":
        return f"{rpc.package}.{rpc.service}.{rpc.name}" in text or f"{rpc.package}.{rpc.service}/{rpc.name}" in text
    if path.suffix in (".ts", ".tsx"):
        method = rpc.name[0].lower() + rpc.name[1:]
        return rpc.service in text and re.search(rf"\.{method}\s*\(", text) is not None
    names_service = rpc.module in text or f"{rpc.service}Stub" in text or f"{rpc.package}.{rpc.service}" in text
    return names_service and re.search(rf"""["']{rpc.name}["']|\.{rpc.name}\s*\(""", text) is not None


def inventory(rpcs: list[Rpc]) -> dict[str, dict[str, list[str]]]:
    """RPC full name -> caller kind -> files that call it."""
    texts = {kind: [(p, p.read_text(errors="replace")) for p in _files(patterns)]
             for kind, patterns in CALLERS.items()}
    return {rpc.full: {kind: [str(p.relative_to(ROOT)) for p, text in files if _calls(rpc, p, text)]
                       for kind, files in texts.items()}
            for rpc in rpcs}


def uncalled(inv: dict[str, dict[str, list[str]]], *, outside_tests: bool = False) -> list[str]:
    """RPCs no client calls (with outside_tests: none but the tests)."""
    return [name for name, by in inv.items()
            if not any(files for kind, files in by.items() if not (outside_tests and kind == "tests"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    inv = inventory(read_rpcs())
    report = {"rpcs": inv, "uncalled": uncalled(inv), "tests_only": [
        n for n in uncalled(inv, outside_tests=True) if n not in uncalled(inv)]}
    if args.json:
        print(json.dumps(report, sort_keys=True))
        return 0
    kinds = list(CALLERS)
    width = max(len(n) for n in inv)
    print(f"{'rpc':<{width}}  " + "  ".join(f"{k:>12}" for k in kinds))
    for name, by in inv.items():
        print(f"{name:<{width}}  " + "  ".join(f"{len(by[k]):>12}" for k in kinds))
    print(f"\n{len(inv)} RPCs; called by no client: {len(report['uncalled'])}")
    for name in report["uncalled"]:
        print(f"  {name}")
    print(f"called only by tests: {len(report['tests_only'])}")
    for name in report["tests_only"]:
        print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
