"""Glossaries and recipes in the store, on both implementations: the same rules as the file library,
shared by replicas on one store, new recipe ids never collide, and a state dir's files from before the
store are imported once at the first start."""

from __future__ import annotations

import threading

import grpc
import pytest
from recipe_messages import MessageRecipes

from svc_orchestrator.catalogs import GlossaryLibrary
from svc_orchestrator.recipes import RecipeStore
from svc_orchestrator.shared_docs import StoreGlossaries, StoreRecipes, import_files
from svc_orchestrator.store import open_store
from tator_core import errors
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb


@pytest.fixture
def stores(store_url, tmp_path):
    """Two replicas' connections to one store."""
    pair = [open_store(store_url, tmp_path), open_store(store_url, tmp_path)]
    yield pair
    for s in pair:
        s.close()


def _recipe(**kw) -> pb.Recipe:
    r = pb.Recipe(name=kw.pop("name", "Windowed lane"), glossary=kw.pop("glossary", '{"circle": ["disc"]}'), **kw)
    r.config.CopyFrom(pb.PrepassConfig(detector_conf=0.3))
    return r


def test_glossaries_follow_the_library_rules_and_are_shared(stores):
    a, b = StoreGlossaries(stores[0]), StoreGlossaries(stores[1])
    g = a.put("  my   shapes ", '{"circle": ["disc", "ring"], "square": "box, block"}')
    assert g.name == "my shapes" and g.text == "circle: disc, ring\nsquare: box, block"
    assert b.get("my shapes ") == g and [x.name for x in b.list()] == ["my shapes"]  # seen on the other replica
    b.put("My-shapes", "circle: orb")
    assert [x.name for x in a.list()] == ["my shapes", "My-shapes"]  # sorted case-insensitively, as files are
    assert a.text("My-shapes") == "circle: orb"
    for bad in ("", "   ", "..", "a/b"):
        with pytest.raises(errors.TatorError) as exc:
            a.put(bad, "circle: disc")
        assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(errors.TatorError) as exc:
        a.put("empty", "nothing here")
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
    b.delete("my shapes")
    for op in (lambda: a.get("my shapes"), lambda: a.delete("my shapes")):
        with pytest.raises(errors.TatorError) as exc:
            op()
        assert exc.value.code == grpc.StatusCode.NOT_FOUND
    # a row that is not a glossary document (written by hand, say) is skipped, not an error
    stores[0].doc_put("glossary", "broken", "{not json", 0.0)
    assert [x.name for x in a.list()] == ["My-shapes"]
    with pytest.raises(errors.TatorError):
        a.get("broken")


def test_recipes_follow_the_store_rules_and_new_ids_never_collide(stores):
    a, b = MessageRecipes(StoreRecipes(stores[0])), MessageRecipes(StoreRecipes(stores[1]))
    saved = a.put(_recipe())
    assert saved.id == "Windowed-lane" and saved.glossary == "circle: disc" and saved.create_time.seconds > 0
    assert b.get(saved.id) == saved
    replaced = b.put(_recipe(id=saved.id, description="v2"))
    assert replaced.create_time == saved.create_time and a.get(saved.id).description == "v2"
    # replicas creating recipes of one name at once: every one gets an id of its own
    made: list[str] = []

    def create(lib):
        for _ in range(4):
            made.append(lib.put(_recipe()).id)

    threads = [threading.Thread(target=create, args=(lib,)) for lib in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(made) == sorted(f"Windowed-lane-{n}" for n in range(2, 10))
    assert len(a.list()) == 9
    # export from one replica, import on the other: renamed on collision, as with files
    archive, _ = a.export(saved.id)
    imported, notice = b.import_archive(archive)
    assert imported.id == "Windowed-lane-10" and "imported as" in notice
    a.delete(imported.id)
    with pytest.raises(errors.TatorError) as exc:
        b.get(imported.id)
    assert exc.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(errors.TatorError) as exc:
        b.delete("../x")
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_files_of_an_old_state_dir_are_imported_once(stores, tmp_path):
    state = tmp_path / "old-state"
    files = GlossaryLibrary(state / "glossaries")
    files.put("shapes", "circle: disc")
    files.put("taken", "circle: from the file")
    old_recipes = MessageRecipes(RecipeStore(state / "recipes"))
    old = old_recipes.put(_recipe(name="lane"))
    (state / "glossaries" / "junk.json").write_text("not a glossary")
    store = stores[0]
    glossaries, recipes = StoreGlossaries(store), MessageRecipes(StoreRecipes(store))
    glossaries.put("taken", "circle: already in the store")  # another replica got here first
    assert import_files(store, state, "r1") == {"glossary": 1, "recipe": 1}
    assert glossaries.text("shapes") == "circle: disc"
    assert glossaries.text("taken") == "circle: already in the store"  # the store wins
    assert recipes.get(old.id) == old  # the same document, times included
    # once per directory and replica: a later start imports nothing, even a file added since
    files.put("later", "circle: ring")
    glossaries.delete("shapes")
    assert import_files(store, state, "r1") == {}
    assert [g.name for g in glossaries.list()] == ["taken"]
    # the files stay (an older orchestrator on this state dir still finds them)
    assert {g.name for g in files.list()} == {"shapes", "taken", "later"}
    # another replica with files at its own (same-named) path imports its own
    assert import_files(stores[1], state, "r2") == {"glossary": 2, "recipe": 0}
    # a state dir without the old directories imports nothing and is marked all the same
    assert import_files(store, tmp_path / "fresh", "r1") == {"glossary": 0, "recipe": 0}
    assert import_files(store, tmp_path / "fresh", "r1") == {}


async def test_the_orchestrator_keeps_them_in_its_store(store_url, tmp_path):
    from svc_orchestrator.app import Orchestrator
    from svc_orchestrator.settings import OrchestratorSettings

    state = tmp_path / "state"
    GlossaryLibrary(state / "glossaries").put("from a file", "circle: disc")
    nowhere = "127.0.0.1:1"
    settings = OrchestratorSettings(data_root=tmp_path / "data", state_dir=state, store_url=store_url,
                                    detector_address=nowhere, sam3_address=nowhere, qwen_address=nowhere,
                                    classifier_address=nowhere, replica_id="a")
    app = Orchestrator(settings)
    try:
        assert app.glossaries.text("from a file") == "circle: disc"
        app.glossaries.put("new", "square: box")
        MessageRecipes(app.recipes).put(_recipe())
    finally:
        await app.close()
    store = open_store(store_url, tmp_path)
    try:
        assert store.doc_get("glossary", "new") is not None and store.doc_get("recipe", "Windowed-lane") is not None
    finally:
        store.close()
    assert not (state / "recipes").exists()  # nothing written as files any more
