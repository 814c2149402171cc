"""Glossaries and recipes kept in the orchestrator's store (the `catalog` table), so every replica on
one PostgreSQL sees the same ones; on SQLite they live in the state dir's database file.

The validation, naming and timestamps are those of `GlossaryLibrary` and `RecipeStore`; only where
the documents are kept differs (one row per document, keyed by kind and name, holding the same JSON
the files hold). A new recipe id is taken with an insert that fails when the id exists, so two
replicas creating recipes of one name at once get two ids, never one overwritten.

`import_files` brings the files of a state dir from before the store into it, once per directory
of a replica (a marker row records it): documents already in the store win, files are left where they are.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path

from svc_orchestrator.catalogs import GlossaryLibrary
from svc_orchestrator.recipes import Recipe, RecipeStore, free_id, recipe_doc, recipe_from_doc
from svc_orchestrator.store import Store
from tator_core import errors

log = logging.getLogger("tator.orchestrator.shared_docs")
GLOSSARY, RECIPE, IMPORTED = "glossary", "recipe", "imported-files"


def _dumps(doc: dict) -> str:
    return json.dumps(doc, indent=2, sort_keys=True)


class StoreGlossaries(GlossaryLibrary):
    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def _parse(text: str | None) -> dict | None:
        try:
            doc = json.loads(text) if text is not None else None
        except ValueError:
            return None
        return doc if GlossaryLibrary.valid(doc) else None

    def _load(self, clean: str) -> dict | None:
        return self._parse(self.store.doc_get(GLOSSARY, clean))

    def _docs(self) -> list[dict]:
        return [d for d in (self._parse(text) for _, text in self.store.doc_list(GLOSSARY)) if d is not None]

    def _write(self, clean: str, doc: dict) -> None:
        self.store.doc_put(GLOSSARY, clean, _dumps(doc), time.time())

    def _remove(self, clean: str) -> bool:
        return self.store.doc_delete(GLOSSARY, clean)


class StoreRecipes(RecipeStore):
    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def _parse(text: str | None, name: str) -> Recipe | None:
        if text is None:
            return None
        try:
            return recipe_from_doc(json.loads(text), name)
        except (ValueError, errors.TatorError):
            return None

    def _get(self, recipe_id: str) -> Recipe | None:
        return self._parse(self.store.doc_get(RECIPE, recipe_id), recipe_id)

    def _all(self) -> list[Recipe]:
        return [r for r in (self._parse(text, name) for name, text in self.store.doc_list(RECIPE)) if r is not None]

    def _save(self, recipe: Recipe) -> Recipe:
        self.store.doc_put(RECIPE, recipe.id, _dumps(recipe_doc(recipe)), time.time())
        return recipe

    def _save_new(self, recipe: Recipe, base: str) -> Recipe:
        # The insert is the check: another replica taking the id in between makes it fail, and the
        # next free id is tried.
        def taken(candidate: str) -> bool:
            doc = recipe_doc(replace(recipe, id=candidate))
            return not self.store.doc_add(RECIPE, candidate, _dumps(doc), time.time())

        return replace(recipe, id=free_id(base, taken))

    def _remove(self, recipe_id: str) -> bool:
        return self.store.doc_delete(RECIPE, recipe_id)


def import_files(store: Store, state_dir: Path, replica_id: str) -> dict[str, int]:
    """Glossaries and recipes of `state_dir`'s files into the store, the first time this replica's
    directory is seen (replicas on other hosts may have files at the same path); the numbers imported
    per kind."""
    state_dir = Path(state_dir).resolve()
    marker = f"{replica_id}:{state_dir}"
    if store.doc_get(IMPORTED, marker) is not None:
        return {}
    counts = {GLOSSARY: 0, RECIPE: 0}
    files = {GLOSSARY: [], RECIPE: []}  # type: dict[str, list[tuple[str, dict]]]
    try:
        if (state_dir / "glossaries").is_dir():
            files[GLOSSARY] = [(d["name"], d) for d in GlossaryLibrary(state_dir / "glossaries")._docs()]
        if (state_dir / "recipes").is_dir():
            files[RECIPE] = [(r.id, recipe_doc(r)) for r in RecipeStore(state_dir / "recipes")._all()]
    except errors.TatorError as exc:  # a symlinked directory: refused as the file store refused it
        log.warning("not importing the glossary and recipe files of %s: %s", state_dir, exc.message)
        return {}
    for kind, docs in files.items():
        for name, doc in docs:
            counts[kind] += store.doc_add(kind, name, _dumps(doc), time.time())
    store.doc_put(IMPORTED, marker, json.dumps({**counts, "at": time.time()}), time.time())
    if any(counts.values()):
        log.info("imported %d glossaries and %d recipes from %s into the store", counts[GLOSSARY],
                 counts[RECIPE], state_dir)
    return counts
