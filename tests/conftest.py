"""Shared pytest setup: offline model libraries, GPU marker, a scratch home."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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


@pytest.fixture(scope="session")
def stack_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One models directory for every stack test module of the session. The first module's
    `build_models` builds into it (about a minute on two cores); the later ones find its stamp up to
    date (same seed, same synthetic dataset) and skip the build. TATOR_TEST_MODELS_DIR reuses a set
    built by an earlier run. Tests only read it: a module that changes models (writes weights,
    changes a default) must copy it first (shutil.copytree), or every later module sees the change."""
    env = os.environ.get("TATOR_TEST_MODELS_DIR")
    return Path(env) if env else tmp_path_factory.mktemp("stack-models")


@pytest.fixture(scope="session")
def pg_server():
    """One real PostgreSQL server for the session (each test takes a fresh database from it)."""
    from tator_fixtures.postgres import PostgresServer, find_bin_dir

    if find_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed: `make setup-postgres`")
    with PostgresServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """The orchestrator store URL of each implementation: the same test runs against both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'orchestrator.sqlite'}"
    return request.getfixturevalue("pg_server").create_database()
