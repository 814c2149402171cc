"""Dead code fails the default suite: vulture at its configured confidence (pyproject [tool.vulture])
finds nothing, its whitelist names every RPC and nothing that is not one, and the RPC inventory sees
the callers it should."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import rpc_inventory  # a script, importable only once scripts/ is on the path

WHITELIST = ROOT / "scripts" / "vulture_whitelist.py"
#: Whitelisted names that are not RPCs, each explained in the whitelist.
NOT_RPCS = {"add_generic_rpc_handlers", "add_registered_method_handlers", "intercept_service", "padding_side",
            "max_length", "num_beams", "num_return_sequences", "top_k", "chat_template", "tempdir"}


def _vulture(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vulture", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_no_high_confidence_dead_code() -> None:
    run = _vulture()
    assert run.returncode == 0 and not run.stdout.strip(), run.stdout + run.stderr


def test_vulture_reports_an_unused_function(tmp_path: Path) -> None:
    """The check above can fail: the same configuration flags dead code in a file it is given."""
    (tmp_path / "dead.py").write_text("import os\n\n\ndef used():\n    return 1\n\n\nused()\n")
    run = _vulture(str(tmp_path / "dead.py"))
    assert run.returncode != 0 and "unused import 'os'" in run.stdout


def test_the_whitelist_names_exactly_the_rpcs() -> None:
    names = {node.attr for node in ast.walk(ast.parse(WHITELIST.read_text()))
             if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "_"}
    rpcs = {rpc.name for rpc in rpc_inventory.read_rpcs()}
    assert names - NOT_RPCS == rpcs


def test_rpc_inventory_reads_every_service_and_finds_known_callers() -> None:
    rpcs = rpc_inventory.read_rpcs()
    assert {r.service for r in rpcs} == {"DetectorService", "Sam3Service", "QwenService", "ClassifierService",
                                         "OrchestratorService"}
    inv = rpc_inventory.inventory(rpcs)
    detect = inv["tator.detector.v1.DetectorService/Detect"]
    assert "svc_orchestrator/clients.py" in detect["orchestrator"] and detect["cli"]
    # ListModels of one service is not counted as a call of another's.
    assert not inv["tator.orchestrator.v1.OrchestratorService/ListModels"]["orchestrator"]
    assert set(rpc_inventory.uncalled(inv)) <= set(inv)
