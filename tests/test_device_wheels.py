"""scripts/device_wheels.py: the carried set is pinned like the project, and its
dependency check catches a wheel whose needs nothing accounts for (no network)."""

from __future__ import annotations

import importlib.util
import re
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("device_wheels", ROOT / "scripts" / "device_wheels.py")
dw = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dw)  # type: ignore[union-attr]  # a file spec always has a loader


def _pyproject_pins() -> dict[str, str]:
    text = (ROOT / "pyproject.toml").read_text()
    return {canonicalize_name(m[0]): m[1] for m in re.findall(r'"([A-Za-z0-9_.-]+)==([^"]+)"', text)}


def fake_wheel(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    path = folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    meta = "Metadata-Version: 2.1\nName: {}\nVersion: {}\n{}".format(
        name, version, "".join(f"Requires-Dist: {r}\n" for r in requires))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name.replace('-', '_')}-{version}.dist-info/METADATA", meta)
    return path


def test_every_carried_pin_matches_the_project_pin():
    pins = _pyproject_pins()
    for req in dw.requirements():
        assert len(req.specifier) == 1 and next(iter(req.specifier)).operator == "==", req
        name = canonicalize_name(req.name)
        if name in pins:
            assert str(req.specifier) == f"=={pins[name]}", name


def test_carried_on_device_and_excluded_do_not_overlap():
    carried = {canonicalize_name(r.name) for r in dw.requirements()}
    excluded = {canonicalize_name(n) for n in dw.EXCLUDED}
    assert not carried & dw.ON_DEVICE
    assert not carried & excluded
    # torch/torchvision come with the device: carrying them would blow the budget many times over.
    assert {"torch", "torchvision", "transformers"} <= dw.ON_DEVICE


def test_unresolved_names_the_wheel_and_its_missing_need(tmp_path):
    ok = fake_wheel(tmp_path, "grpcio-status", "1.85.3",
                    ["grpcio>=1.0", "protobuf", 'colorama; sys_platform == "win32"', 'rich; extra == "cli"'])
    bad = fake_wheel(tmp_path, "protovalidate", "2.1.0", ["protobuf-py>=0.6", "left-pad>=1"])
    assert dw.unresolved({"grpcio-status": ok}) == []  # win32-only and extra-only needs do not apply
    missing = dw.unresolved({"protovalidate": bad})
    assert missing == ["protovalidate needs left-pad>=1"]


def test_wheels_in_counts_only_the_pinned_version(tmp_path):
    fake_wheel(tmp_path, "pytest-timeout", "2.3.0", [])
    assert "pytest-timeout" not in dw.wheels_in(tmp_path)
    fake_wheel(tmp_path, "pytest-timeout", "2.4.0", [])
    assert dw.wheels_in(tmp_path)["pytest-timeout"].name == "pytest_timeout-2.4.0-py3-none-any.whl"


def test_marker_environment_is_the_device_interpreter():
    assert Requirement('x; python_version >= "3.12"').marker.evaluate(dw.MARKER_ENV)
    assert not Requirement('x; python_version < "3.12"').marker.evaluate(dw.MARKER_ENV)
    assert "cp312" in dw.TARGET_FLAGS and "--only-binary=:all:" in dw.TARGET_FLAGS
