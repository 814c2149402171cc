"""`python -m svc_detector --host H --port P --metrics-port M --device D --registry R [...]`, or
`python -m svc_detector check-model SPEC OUT` (tator_core.model_check)."""

from __future__ import annotations

import sys

from svc_detector.settings import DetectorSettings
from tator_core import model_check
from tator_core.offline import enforce_offline


def main() -> None:
    if sys.argv[1:2] == [model_check.COMMAND]:  # check a candidate model instead of serving
        enforce_offline()
        from svc_detector.models import DetectorFamily

        sys.exit(model_check.run(sys.argv[2:], DetectorFamily()))
    settings = DetectorSettings.load(sys.argv[1:])
    enforce_offline()  # before ultralytics / rfdetr are imported
    from svc_detector.server import build_spec
    from tator_core.server import run

    run(build_spec, settings)


if __name__ == "__main__":
    main()
