"""A recipe store driven the way the orchestrator's server drives it: messages in and out, converted at
the boundary (svc_orchestrator/convert/recipes.py), so tests state their expectations on the messages
clients see."""

from __future__ import annotations

from svc_orchestrator.convert.recipes import recipe_from_pb, recipe_pb
from svc_orchestrator.recipes import RecipeStore
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb


class MessageRecipes:
    def __init__(self, store: RecipeStore) -> None:
        self.store = store

    def put(self, recipe: pb.Recipe) -> pb.Recipe:
        return recipe_pb(self.store.put(recipe_from_pb(recipe)))

    def get(self, recipe_id: str) -> pb.Recipe:
        return recipe_pb(self.store.get(recipe_id))

    def list(self) -> list[pb.Recipe]:
        return [recipe_pb(r) for r in self.store.list()]

    def delete(self, recipe_id: str) -> None:
        self.store.delete(recipe_id)

    def export(self, recipe_id: str) -> tuple[bytes, str]:
        return self.store.export(recipe_id)

    def import_archive(self, archive: bytes) -> tuple[pb.Recipe, str]:
        recipe, notice = self.store.import_archive(archive)
        return recipe_pb(recipe), notice
