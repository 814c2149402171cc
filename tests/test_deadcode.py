"""Dead code fails the default suite: vulture at its configured confidence (pyproject [tool.vulture],
run by scripts/deadcode.py with the RPC names of protos/) finds nothing, and the RPC inventory sees
the callers it should."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import deadcode  # scripts, importable only once scripts/ is on the path
import rpc_inventory


def test_no_high_confidence_dead_code() -> None:
    run = deadcode.run([])
    assert run.returncode == 0 and not run.stdout.strip(), run.stdout + run.stderr


def test_vulture_reports_dead_code_with_this_configuration(tmp_path: Path) -> None:
    """The check above can fail: the same configuration flags dead code in a file it is given."""
    (tmp_path / "dead.py").write_text("import os\n\n\ndef used():\n    return 1\n\n\nused()\n")
    run = subprocess.run([sys.executable, "-m", "vulture", str(tmp_path / "dead.py")], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "unused import 'os'" in run.stdout


def test_every_rpc_is_whitelisted_and_a_servicer_method_is_then_used() -> None:
    names = {node.attr for node in ast.walk(ast.parse(deadcode.rpc_whitelist()))
             if isinstance(node, ast.Attribute)}
    assert names == {rpc.name for rpc in rpc_inventory.read_rpcs()} and "Detect" in names


def test_rpc_inventory_reads_every_service_and_finds_known_callers() -> None:
    rpcs = rpc_inventory.read_rpcs()
    assert {r.service for r in rpcs} == {"DetectorService", "Sam3Service", "QwenService", "ClassifierService",
                                         "OrchestratorService", "ModelManagementService"}
    inv = rpc_inventory.inventory(rpcs)
    detect = inv["tator.detector.v1.DetectorService/Detect"]
    assert "svc_orchestrator/clients.py" in detect["orchestrator"] and detect["cli"]
    # ListModels of one service is not counted as a call of another's.
    assert not inv["tator.orchestrator.v1.OrchestratorService/ListModels"]["orchestrator"]
    assert set(rpc_inventory.uncalled(inv)) <= set(inv)
