"""`python -m svc_sam3 --host H --port P --metrics-port M --device D --registry R [--max-prompt-runs N ...]`."""

from __future__ import annotations

import sys

from svc_sam3.settings import Sam3Settings
from tator_core.offline import enforce_offline


def main() -> None:
    settings = Sam3Settings.load(sys.argv[1:])
    enforce_offline()  # before transformers is imported
    from svc_sam3.server import build_spec
    from tator_core.server import run

    run(build_spec, settings)


if __name__ == "__main__":
    main()
