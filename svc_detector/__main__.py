"""`python -m svc_detector --host H --port P --metrics-port M --device D --registry R [...]`."""

from __future__ import annotations

import sys

from svc_detector.settings import DetectorSettings
from tator_core.offline import enforce_offline


def main() -> None:
    settings = DetectorSettings.load(sys.argv[1:])
    enforce_offline()  # before ultralytics / rfdetr are imported
    from svc_detector.server import build_spec
    from tator_core.server import run

    run(build_spec, settings)


if __name__ == "__main__":
    main()
