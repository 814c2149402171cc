"""Dead-code check: vulture over the paths and settings of pyproject's [tool.vulture], plus the RPC
method names of protos/ (gRPC calls servicer methods by name, so vulture cannot see them used).

    python scripts/deadcode.py                      # findings at the configured confidence; exit 3 on any
    python scripts/deadcode.py --min-confidence 60  # the longer list to review by hand
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rpc_inventory import ROOT, read_rpcs  # a sibling script


def rpc_whitelist() -> str:
    names = sorted({rpc.name for rpc in read_rpcs()})
    return "_ = object()\n" + "".join(f"_.{name}\n" for name in names)


def run(extra: list[str]) -> subprocess.CompletedProcess:
    paths = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["vulture"]["paths"]
    with tempfile.TemporaryDirectory() as tmp:
        whitelist = Path(tmp) / "rpc_whitelist.py"
        whitelist.write_text(rpc_whitelist())
        return subprocess.run([sys.executable, "-m", "vulture", *paths, str(whitelist), *extra], cwd=ROOT,
                              capture_output=True, text=True, timeout=600)


def main(argv: list[str] | None = None) -> int:
    result = run(list(sys.argv[1:] if argv is None else argv))
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
