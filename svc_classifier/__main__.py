"""`python -m svc_classifier --host H --port P --metrics-port M --device D --registry FILE [...]`."""

from __future__ import annotations

import sys

from tator_core.offline import enforce_offline


def main() -> None:
    enforce_offline()  # before transformers is imported anywhere
    from svc_classifier.server import build_spec
    from svc_classifier.settings import ClassifierSettings
    from tator_core.server import run

    settings = ClassifierSettings.load(sys.argv[1:])
    run(build_spec, settings)


if __name__ == "__main__":
    main()
