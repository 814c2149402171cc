"""Regression steps, one module per area (`core` = Tier 0 smoke; services and flows add their own).

Importing this package imports every module in it, in name order, so each module's `@step` decorators
register their steps; the order is fixed so step order (and therefore the summary) is deterministic.
"""

from __future__ import annotations

import importlib
import pkgutil

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_module.name}")
