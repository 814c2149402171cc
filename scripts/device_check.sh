#!/usr/bin/env bash
# The device check in one call (steps: benchmarks/device.py). On the GPU machine, with
# build/device-wheels carried (make device-wheels):
#     OUT=/some/dir bash scripts/device_check.sh
# Here, the CPU dry run of the same code path (tiny models, fewer calls):
#     bash scripts/device_check.sh --dry-run
# Extra arguments go to benchmarks/device.py (--families, --steps, --skip-tests, --device).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-build/device-out}"
WHEELS="${TATOR_DEVICE_WHEELS:-build/device-wheels}"
# The interpreter: $PYTHON, else this checkout's .venv (here), else python3 (the device machine's).
PY="${PYTHON:-python3}"
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi

if "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' && compgen -G "$WHEELS/*.whl" >/dev/null; then
  # The device: the carried wheels go into a temporary target that shadows the machine's own packages
  # (the generated stubs need the grpcio/protobuf they were made with).
  SITE="$(mktemp -d "${TMPDIR:-/tmp}/tator-device-site-XXXXXX")"
  if ! "$PY" -m pip install --quiet --no-index --no-deps --target "$SITE" "$WHEELS"/*.whl; then
    echo "pip failed; unpacking the wheels instead" >&2
    "$PY" - "$SITE" "$WHEELS"/*.whl <<'PYEOF'
import sys, zipfile
for wheel in sys.argv[2:]:
    zipfile.ZipFile(wheel).extractall(sys.argv[1])
PYEOF
  fi
  export PYTHONPATH="$SITE:$PWD"
else
  # Not Python 3.12 with the wheels (this CPU machine): the project's own environment has the same set.
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
# The whole check must fit 8 minutes of wall time.
exec timeout "${TATOR_DEVICE_TIMEOUT_S:-480}" "$PY" benchmarks/device.py --out "$OUT" "$@"
