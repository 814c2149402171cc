"""`python -m svc_qwen --host H --port P --metrics-port M --device D --registry R`."""

from __future__ import annotations

import sys

from tator_core.offline import enforce_offline


def main() -> None:
    enforce_offline()  # before transformers is imported anywhere
    from svc_qwen.server import build_spec
    from svc_qwen.settings import QwenSettings
    from tator_core.server import run

    settings = QwenSettings.load(sys.argv[1:])
    run(build_spec, settings)


if __name__ == "__main__":
    main()
