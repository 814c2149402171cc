"""`python -m svc_qwen --host H --port P --metrics-port M --device D --registry R`, or
`python -m svc_qwen check-model SPEC OUT` (tator_core.model_check)."""

from __future__ import annotations

import sys

from tator_core import model_check
from tator_core.offline import enforce_offline


def main() -> None:
    enforce_offline()  # before transformers is imported anywhere
    if sys.argv[1:2] == [model_check.COMMAND]:  # check a candidate model instead of serving
        from svc_qwen.models import QwenFamily

        sys.exit(model_check.run(sys.argv[2:], QwenFamily()))
    from svc_qwen.server import build_spec
    from svc_qwen.settings import QwenSettings
    from tator_core.server import run

    settings = QwenSettings.load(sys.argv[1:])
    run(build_spec, settings)


if __name__ == "__main__":
    main()
