"""The wheels a GPU machine needs beyond what it ships, for an offline device check.

    .venv/bin/python scripts/device_wheels.py [--dest build/device-wheels] [--check-only]

The device machine has Python 3.12 with torch, torchvision, transformers,
grpcio, numpy, pillow and pytest (and their own dependencies), no network, and
takes at most 64 MiB of files with the working tree. This script downloads the
cp312 manylinux wheels of everything else the services import on their device
path (`CARRIED`), prints one JSON line with the total size, and fails when

  * the total is over the budget (40 MiB),
  * a carried wheel needs a distribution that is neither carried, nor on the
    device (`ON_DEVICE`), nor excluded with a reason (`EXCLUDED`),
  * the set does not install into an empty target with `--no-index --no-deps`
    for Python 3.12 / manylinux x86_64 (the dry run).

Versions are the ones the project's own environment runs (pyproject pins where
it has them). scripts/device_check.sh installs this folder with the same flags.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "build" / "device-wheels"
BUDGET_MIB = 40.0
CARRY_MIB = 64.0  # what the device machine takes: the working tree plus the carried wheels
PYTHON_VERSION = "3.12"
# Wheel tags the device's interpreter accepts: CPython 3.12 on glibc x86_64.
TARGET_FLAGS = ["--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp",
                "--abi", "cp312", "--abi", "abi3", "--abi", "none",
                "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                "--platform", "manylinux2014_x86_64", "--platform", "manylinux2010_x86_64",
                "--platform", "manylinux1_x86_64", "--platform", "any"]
# Marker environment of the device, to decide which Requires-Dist lines apply.
MARKER_ENV = {"python_version": PYTHON_VERSION, "python_full_version": PYTHON_VERSION + ".0",
              "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
              "os_name": "posix", "implementation_name": "cpython", "platform_python_implementation": "CPython",
              "extra": ""}

#: requirement -> why the device path needs it.
CARRIED: dict[str, str] = {
    # gRPC runtime: the generated stubs check the grpcio/protobuf versions they were made with, so the device's
    # own grpcio (any version) is shadowed by the pinned one.
    "grpcio==1.85.3": "generated *_pb2_grpc.py refuse an older grpcio",
    "grpcio-health-checking==1.85.1": "grpc.health.v1 in every service",
    "grpcio-reflection==1.85.1": "server reflection in every service",
    "grpcio-status==1.85.3": "google.rpc.Status error details",
    "protobuf==7.36.2": "generated *_pb2.py check the protobuf runtime version",
    "googleapis-common-protos==1.76.0": "google.rpc.ErrorInfo",
    "protovalidate==2.1.0": "request validation in the server interceptor",
    "protobuf-py==0.7.0": "protovalidate's runtime (CEL)",
    "protobuf-py-ext==0.7.0": "protovalidate's runtime (CEL)",
    "protobuf-py-pure==0.7.0": "protovalidate's runtime (CEL)",
    "prometheus-client==0.26.0": "metrics side port",
    "pydantic==2.14.4": "settings objects, rfdetr model configs",
    "pydantic-core==2.50.5": "pydantic",
    "annotated-types==0.8.0": "pydantic",
    "typing-inspection==0.4.5": "pydantic",
    "typing-extensions==4.16.0": "pydantic needs a newer one than torch may bring",
    "threadpoolctl==3.8.0": "svc_classifier.fit (imported by the classifier service)",
    # Detector families.
    "ultralytics==8.4.190": "YOLO backend",
    "ultralytics-thop==2.2.3": "ultralytics model info (imported by ultralytics.utils.torch_utils)",
    "nvidia-ml-py==13.615.71": "ultralytics GPU queries (pynvml)",
    "psutil==7.2.2": "ultralytics system checks",
    "rfdetr==1.11.2": "RF-DETR backend",
    "supervision==0.31.2": "rfdetr's detection results",
    "pydeprecate==0.9.0": "rfdetr",
    "defusedxml==0.7.1": "supervision dataset utils (imported at import time)",
    "requests==2.34.2": "ultralytics and rfdetr import it (never used offline)",
    "certifi==2026.10.19.post1": "requests",
    "charset-normalizer==3.5.3": "requests",
    "idna==3.20": "requests",
    "urllib3==2.8.0": "requests",
    # The `gpu` tests.
    "pytest-asyncio==1.5.0": "async tests",
    "pytest-timeout==2.4.0": "the suite's timeout setting",
}

#: Distributions the device machine already has (torch, torchvision, transformers, grpcio, numpy, pillow,
#: pytest and what those install).
ON_DEVICE = frozenset(canonicalize_name(n) for n in (
    "torch", "torchvision", "transformers", "numpy", "pillow", "pytest",
    "filelock", "fsspec", "jinja2", "markupsafe", "networkx", "sympy", "mpmath", "triton", "setuptools",
    "huggingface-hub", "tokenizers", "safetensors", "regex", "pyyaml", "tqdm", "packaging",
    "iniconfig", "pluggy", "pygments",
))

#: Declared dependencies left out on purpose -> why. The services import none of them on the device path,
#: except cv2 and scipy, which do not fit: device_check.sh probes for them and reports the detector as
#: skipped when the machine lacks them.
EXCLUDED: dict[str, str] = {
    "opencv-python": "64 MB wheel (headless too), alone over the 64 MiB carry: cv2 must be on the device "
                     "for the detector (ultralytics and supervision import it)",
    "scipy": "35 MB wheel: must be on the device for RF-DETR (rfdetr.models.matcher imports it); transformers "
             "only uses it when present",
    "matplotlib": "plots: supervision/ultralytics import it lazily; calibration reports run on the CPU",
    "polars": "ultralytics training logs, not imported for inference",
    "ultralytics-platform": "ultralytics cloud client, not imported for inference",
    "av": "supervision video IO, not imported",
    "opencv-python-headless": "see opencv-python",
    "xgboost": "calibration only (the orchestrator imports it lazily); it needs scipy, see above",
    "scikit-learn": "calibration and TrainHead only, imported lazily; needs scipy",
    "nvidia-nccl-cu12": "xgboost's multi-GPU build",
}


def requirements() -> list[Requirement]:
    return [Requirement(r) for r in CARRIED]


def _pip(*args: str) -> None:
    # pip's stderr is noisy (one warning per absent local index folder): shown only when pip fails.
    done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"pip {args[0]} failed ({done.returncode})")


def download(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    _pip("download", "--quiet", "--no-deps", *TARGET_FLAGS, "--dest", str(dest), *CARRIED)


def wheels_in(dest: Path) -> dict[str, Path]:
    """canonical name -> wheel; only the pinned version counts (an older download is ignored)."""
    pins = {canonicalize_name(r.name): r.specifier for r in requirements()}
    out: dict[str, Path] = {}
    for path in sorted(dest.glob("*.whl")):
        name, version, _, _ = parse_wheel_filename(path.name)
        if name in pins and version in pins[name]:
            out[name] = path
    return out


def requires_of(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        msg = Parser().parsestr(zf.read(meta).decode("utf-8"))
    return [Requirement(line) for line in msg.get_all("Requires-Dist") or []]


def unresolved(wheels: dict[str, Path]) -> list[str]:
    """Dependencies of the carried wheels that nothing accounts for."""
    carried = {canonicalize_name(r.name) for r in requirements()}
    known = carried | ON_DEVICE | {canonicalize_name(n) for n in EXCLUDED}
    missing = []
    for name, wheel in sorted(wheels.items()):
        for req in requires_of(wheel):
            if req.marker is not None and not req.marker.evaluate(MARKER_ENV):
                continue  # an extra or another platform
            if canonicalize_name(req.name) not in known:
                missing.append(f"{name} needs {req}")
    return missing


def dry_run(wheels: dict[str, Path]) -> int:
    """Install the set into an empty target exactly as the device will; returns the installed size."""
    with tempfile.TemporaryDirectory(prefix="tator-device-site-") as target:
        _pip("install", "--quiet", "--no-index", "--no-deps", "--target", target, *TARGET_FLAGS,
             *map(str, wheels.values()))
        return sum(p.stat().st_size for p in Path(target).rglob("*") if p.is_file())


def tracked_bytes() -> int:
    """Size of the files git tracks: the working tree that travels with the wheels."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return sum((ROOT / n).stat().st_size for n in names.decode().split("\0") if n and (ROOT / n).is_file())


def check(dest: Path) -> dict:
    wheels = wheels_in(dest)
    missing_wheels = sorted({canonicalize_name(r.name) for r in requirements()} - set(wheels))
    total = sum(p.stat().st_size for p in wheels.values())
    report = {
        "dest": str(dest), "wheels": len(wheels), "total_mib": round(total / 2**20, 2), "budget_mib": BUDGET_MIB,
        "largest": sorted(((p.name, round(p.stat().st_size / 2**20, 2)) for p in wheels.values()),
                          key=lambda x: -x[1])[:5],
        "missing_wheels": missing_wheels, "unresolved": unresolved(wheels), "excluded": sorted(EXCLUDED),
    }
    tree = tracked_bytes()
    report["tree_mib"] = round(tree / 2**20, 2)
    report["carry_mib"] = round((tree + total) / 2**20, 2)
    report["installed_mib"] = round(dry_run(wheels) / 2**20, 2) if not missing_wheels else None
    report["ok"] = (not missing_wheels and not report["unresolved"] and total <= BUDGET_MIB * 2**20
                    and tree + total <= CARRY_MIB * 2**20)
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dest", type=Path, default=DEST, help="folder for the wheels (ignored by git)")
    p.add_argument("--check-only", action="store_true", help="do not download; check what is there")
    args = p.parse_args(argv)
    if not args.check_only:
        download(args.dest)
    report = check(args.dest)
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
