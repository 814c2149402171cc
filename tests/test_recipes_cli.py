"""`tator recipes list|get|put|delete|import|export` against a real orchestrator server (in-process, on a
loopback port, its own state dir); the CLI runs in a thread with its own event loop, as from a shell."""

from __future__ import annotations

import asyncio
import json
import zipfile
from pathlib import Path

import pytest
import pytest_asyncio
from typer.testing import CliRunner

from tator_cli.main import app
from tator_core.server import start_server

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def address(tmp_path_factory):
    from svc_orchestrator.server import build_spec
    from svc_orchestrator.settings import OrchestratorSettings

    home = tmp_path_factory.mktemp("recipes-cli")
    (home / "data").mkdir()
    nowhere = "127.0.0.1:9"  # recipes need no model service
    settings = OrchestratorSettings(host="127.0.0.1", port=0, metrics_port=-1, data_root=home / "data",
                                    state_dir=home / "state", detector_address=nowhere, sam3_address=nowhere,
                                    qwen_address=nowhere, classifier_address=nowhere, health_timeout_s=0.5)
    running = await start_server(build_spec(settings), settings)
    await running.ready.wait()
    yield running.address
    await running.stop()


async def tator(address: str, *args: str | Path):
    return await asyncio.to_thread(CliRunner().invoke, app, [*map(str, args), "--address", address])


def recipe_file(tmp_path: Path, **fields) -> Path:
    doc = {"name": "Windowed lane", "description": "first", "glossary": '{"circle": ["disc", "ring"]}',
           "config": {"detector_conf": 0.3, "enable_caption": False}, **fields}
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(doc))
    return path


async def test_put_get_list_delete(address, tmp_path):
    res = await tator(address, "recipes", "put", recipe_file(tmp_path), "--json")
    assert res.exit_code == 0, res.output
    saved = json.loads(res.stdout)
    rid = saved["id"]
    assert rid == "Windowed-lane" and saved["config"]["detector_conf"] == pytest.approx(0.3)

    got = json.loads((await tator(address, "recipes", "get", rid, "--json")).stdout)
    assert got["glossary"] == "circle: disc, ring" and got["description"] == "first"  # stored normalised

    # get --json -> edit -> put round-trips; the times the file carries are the server's business
    got["description"] = "second"
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(got))
    assert (await tator(address, "recipes", "put", edited)).exit_code == 0
    again = json.loads((await tator(address, "recipes", "get", rid, "--json")).stdout)
    assert again["description"] == "second" and again["create_time"] == saved["create_time"]

    listed = json.loads((await tator(address, "recipes", "list", "--json")).stdout)
    assert [r["id"] for r in listed["recipes"]] == [rid]
    table = await tator(address, "recipes", "list")
    assert rid in table.stdout and "second" in table.stdout

    assert (await tator(address, "recipes", "delete", rid)).exit_code == 0
    gone = await tator(address, "recipes", "get", rid)
    assert gone.exit_code == 1 and "NOT_FOUND" in gone.output


async def test_list_follows_every_page(address, tmp_path, monkeypatch):
    from tator_cli.commands import recipes

    monkeypatch.setattr(recipes, "PAGE_SIZE", 2)
    ids = []
    for i in range(5):
        res = await tator(address, "recipes", "put", recipe_file(tmp_path, id=f"page-{i}", name=f"p{i}"), "--json")
        ids.append(json.loads(res.stdout)["id"])
    listed = json.loads((await tator(address, "recipes", "list", "--json")).stdout)
    assert [r["id"] for r in listed["recipes"]] == sorted(ids)
    for rid in ids:
        await tator(address, "recipes", "delete", rid)


async def test_export_import_round_trip(address, tmp_path):
    res = await tator(address, "recipes", "put", recipe_file(tmp_path, id="lane"), "--json")
    original = json.loads(res.stdout)
    archive = tmp_path / "lane.zip"
    assert (await tator(address, "recipes", "export", "lane", "--out", archive)).exit_code == 0
    assert {"recipe.json", "glossary.json", "manifest.json"} <= set(zipfile.ZipFile(archive).namelist())

    # the id is taken: imported under a new id, and the notice says so
    res = await tator(address, "recipes", "import", archive, "--json")
    assert res.exit_code == 0, res.output
    imported = json.loads(res.stdout)
    new_id = imported["recipe"]["id"]
    assert new_id != "lane" and "lane" in imported["notice"]
    assert imported["recipe"]["config"] == original["config"] and imported["recipe"]["glossary"] == original["glossary"]

    assert (await tator(address, "recipes", "delete", "lane")).exit_code == 0
    assert (await tator(address, "recipes", "delete", new_id)).exit_code == 0


async def test_bad_input_is_refused_with_the_reason(address, tmp_path):
    not_json = tmp_path / "bad.json"
    not_json.write_text("{not json")
    res = await tator(address, "recipes", "put", not_json)
    assert res.exit_code == 1 and "not a recipe" in res.output

    unknown = await tator(address, "recipes", "put", recipe_file(tmp_path, colour="red"))
    assert unknown.exit_code == 1 and "colour" in unknown.output  # a typo is refused, not dropped

    bad_id = await tator(address, "recipes", "put", recipe_file(tmp_path, id="../escape"))
    assert bad_id.exit_code == 1 and "INVALID_ARGUMENT" in bad_id.output

    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK not really a zip")
    res = await tator(address, "recipes", "import", junk)
    assert res.exit_code == 1 and "ARCHIVE_INVALID" in res.output

    missing = await tator(address, "recipes", "export", "nobody", "--out", tmp_path / "x.zip")
    assert missing.exit_code == 1 and "NOT_FOUND" in missing.output and not (tmp_path / "x.zip").exists()
