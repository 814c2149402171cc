"""Shared pytest setup: offline model libraries, GPU marker, a scratch home."""

from __future__ import annotations

import os
import tempfile

import pytest

# Before any model library is imported by a test module.
os.environ.setdefault("TATOR_HOME", os.path.join(os.path.dirname(os.path.dirname(__file__)), ".tator"))
from tator_core.offline import enforce_offline

enforce_offline()
os.environ.setdefault("MPLBACKEND", "Agg")
tempfile.tempdir = None


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
