"""`python -m svc_classifier --host H --port P --metrics-port M --device D --registry FILE [...]`, or
`python -m svc_classifier check-model SPEC OUT` (tator_core.model_check)."""

from __future__ import annotations

import sys

from tator_core import model_check
from tator_core.offline import enforce_offline


def main() -> None:
    enforce_offline()  # before transformers is imported anywhere
    if sys.argv[1:2] == [model_check.COMMAND]:  # check a candidate backbone instead of serving
        from svc_classifier.family import BackboneFamily

        sys.exit(model_check.run(sys.argv[2:], BackboneFamily()))
    from svc_classifier.server import build_spec
    from svc_classifier.settings import ClassifierSettings
    from tator_core.server import run

    settings = ClassifierSettings.load(sys.argv[1:])
    run(build_spec, settings)


if __name__ == "__main__":
    main()
