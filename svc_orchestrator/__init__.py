"""Orchestrator: the flows (prepass, prepass jobs, calibration jobs) and the state (datasets,
glossary library, recipes, prepass cache, jobs). It composes the model services only through the
typed gRPC clients in `clients.py`; it never imports a model service.

The names defined here are the package's public entry points for code outside it (the regression
fixtures); everything else is internal."""

from __future__ import annotations

from pathlib import Path


def read_cache_meta(state_dir: Path, cache_key: str) -> dict | None:
    """The meta record (glossary text and hash, labelmap, config hash, model versions) of one prepass
    cache entry of a running or stopped orchestrator, read without writing; None when there is none."""
    from svc_orchestrator.prepass.cache import CACHE_FILE, read_meta

    db = Path(state_dir) / CACHE_FILE
    if not db.is_file():
        raise FileNotFoundError(f"no prepass cache at {db}")
    return read_meta(db, cache_key)
