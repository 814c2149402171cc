"""Backbone families. `load(entry, device)` picks the family module; each
returns an object with `embed(crops) -> (n, dim)`, `dim` and `pooling`."""

from __future__ import annotations

import importlib

from tator_core.registry import ModelEntry

FAMILIES = ("clip", "dinov3")


def load(entry: ModelEntry, device: str = "cpu"):
    if entry.family not in FAMILIES:
        raise ValueError(f"{entry.id}: family {entry.family!r} is not a backbone family")
    module = importlib.import_module(f"svc_classifier.backends.{entry.family}")
    return module.load(entry.path, device, entry.options)
