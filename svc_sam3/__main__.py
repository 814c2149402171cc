"""`python -m svc_sam3 --host H --port P --metrics-port M --device D --registry R [--max-prompt-runs N ...]`, or
`python -m svc_sam3 check-model SPEC OUT` (tator_core.model_check)."""

from __future__ import annotations

import sys

from svc_sam3.settings import Sam3Settings
from tator_core import model_check
from tator_core.offline import enforce_offline


def main() -> None:
    if sys.argv[1:2] == [model_check.COMMAND]:  # check a candidate model instead of serving
        enforce_offline()
        from svc_sam3.models import Sam3Family

        sys.exit(model_check.run(sys.argv[2:], Sam3Family()))
    settings = Sam3Settings.load(sys.argv[1:])
    enforce_offline()  # before transformers is imported
    from svc_sam3.server import build_spec
    from tator_core.server import run

    run(build_spec, settings)


if __name__ == "__main__":
    main()
