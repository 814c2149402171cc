"""`python -m svc_orchestrator --host H --port P --metrics-port M [--data-root DIR] [--state-dir DIR] ...`"""

from __future__ import annotations

import sys

from svc_orchestrator.server import build_spec
from svc_orchestrator.settings import OrchestratorSettings
from tator_core.server import run


def main() -> None:
    settings = OrchestratorSettings.load(sys.argv[1:])
    run(build_spec, settings)


if __name__ == "__main__":
    main()
