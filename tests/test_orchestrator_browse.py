"""The read RPCs a browsing client (the web UI) needs: GetDataset, ListDatasetImages (AIP-158 pages),
GetImage (original bytes or a thumbnail, by name or content hash) and ListJobs pages, over a real
orchestrator server. None of them touches a model service, so the model addresses point nowhere."""

from __future__ import annotations

import asyncio
import hashlib
import io
import time

import grpc
import pytest
import pytest_asyncio
from PIL import Image
from stack_fixture import start_orchestrator_only

from svc_orchestrator.convert.jobs import result_column
from svc_orchestrator.datasets import DatasetCatalog
from tator_core.client import ServiceClient
from tator_core.errors import parse_rpc_error
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from tator_fixtures.synth import generate

N_IMAGES = 7


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("browse")
    generate(home / "data" / "synth", seed=1, images=N_IMAGES)
    running, spec = await start_orchestrator_only(home)
    client = ServiceClient(running.address, pb_grpc.OrchestratorServiceStub, timeout_s=60)
    yield client, spec.app, home / "data" / "synth"
    await client.close()
    await running.stop(0)


async def _error(coro) -> tuple[grpc.StatusCode, str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await coro
    err = parse_rpc_error(exc.value)
    return err.code, err.reason, err.message


@pytest.mark.asyncio(loop_scope="module")
async def test_get_dataset_and_not_found(served):
    client, _, root = served
    ds = (await client.call("GetDataset", pb.GetDatasetRequest(dataset_id="synth"))).dataset
    assert ds.id == "synth" and ds.image_count == N_IMAGES and list(ds.labelmap) == \
        root.joinpath("labelmap.txt").read_text().split()
    code, reason, _ = await _error(client.call("GetDataset", pb.GetDatasetRequest(dataset_id="nope")))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "DATASET_NOT_FOUND")


@pytest.mark.asyncio(loop_scope="module")
async def test_pages_cover_every_image_once_with_hashes_and_ground_truth(served):
    client, _, root = served
    catalog = DatasetCatalog(root.parent).get("synth")
    seen, token, pages = [], "", 0
    while True:
        page = await client.call("ListDatasetImages", pb.ListDatasetImagesRequest(
            dataset_id="synth", page_size=3, page_token=token))
        pages += 1
        assert page.total_size == N_IMAGES and len(page.images) <= 3
        seen.extend(page.images)
        token = page.next_page_token
        if not token:
            break
    assert pages == 3 and [i.name for i in seen] == [it.name for it in catalog.items()]
    for img in seen:
        item = catalog.item(img.name)
        assert img.sha256 == hashlib.sha256(item.path.read_bytes()).hexdigest()
        assert (img.width, img.height) == catalog.image_size(item)
        gt = catalog.ground_truth(item)
        assert [(g.label, round(g.box.x1, 3)) for g in img.ground_truth] == [(g.label, round(g.box[0], 3)) for g in gt]
    assert sum(len(i.ground_truth) for i in seen) == catalog.annotation_count() > 0
    split = seen[0].split
    only = await client.call("ListDatasetImages", pb.ListDatasetImagesRequest(dataset_id="synth", split=split))
    assert {i.split for i in only.images} == {split} and not only.next_page_token


@pytest.mark.asyncio(loop_scope="module")
async def test_bad_page_requests_name_the_field(served):
    client, _, _ = served
    first = await client.call("ListDatasetImages", pb.ListDatasetImagesRequest(dataset_id="synth", page_size=2))
    other = pb.ListDatasetImagesRequest(dataset_id="synth", split=first.images[0].split, page_size=2,
                                        page_token=first.next_page_token)
    for req in (other, pb.ListDatasetImagesRequest(dataset_id="synth", page_token="garbage!")):
        code, reason, message = await _error(client.call("ListDatasetImages", req))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in message, (reason, message)
    code, _, message = await _error(client.call("ListDatasetImages", pb.ListDatasetImagesRequest(
        dataset_id="synth", split="nosuch")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "split" in message
    code, _, message = await _error(client.call("ListDatasetImages", pb.ListDatasetImagesRequest(
        dataset_id="synth", page_size=501)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "page_size" in message


@pytest.mark.asyncio(loop_scope="module")
async def test_get_image_by_name_and_by_hash_and_thumbnail(served):
    client, _, root = served
    page = await client.call("ListDatasetImages", pb.ListDatasetImagesRequest(dataset_id="synth", page_size=1))
    img = page.images[0]
    by_name = await client.call("GetImage", pb.GetImageRequest(dataset_id="synth", name=img.name))
    assert by_name.data == (root / img.name).read_bytes() and by_name.mime_type == "image/png"
    assert by_name.sha256 == img.sha256 and (by_name.width, by_name.height) == (img.width, img.height)
    by_hash = await client.call("GetImage", pb.GetImageRequest(dataset_id="synth", sha256=img.sha256))
    assert by_hash.data == by_name.data and by_hash.name == img.name
    thumb = await client.call("GetImage", pb.GetImageRequest(dataset_id="synth", sha256=img.sha256, max_side=64))
    assert thumb.mime_type == "image/jpeg" and len(thumb.data) < len(by_name.data)
    with Image.open(io.BytesIO(thumb.data)) as t:
        assert max(t.size) == 64 and t.format == "JPEG"
        assert abs(t.size[0] / t.size[1] - img.width / img.height) < 0.05
    again = await client.call("GetImage", pb.GetImageRequest(dataset_id="synth", name=img.name, max_side=64))
    assert again.data == thumb.data
    code, reason, _ = await _error(client.call("GetImage", pb.GetImageRequest(dataset_id="synth", sha256="0" * 64)))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    code, _, message = await _error(client.call("GetImage", pb.GetImageRequest(dataset_id="synth", sha256="XYZ")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "sha256" in message
    code, _, _ = await _error(client.call("GetImage", pb.GetImageRequest(dataset_id="synth")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _, _ = await _error(client.call("GetImage", pb.GetImageRequest(dataset_id="synth", name="../etc/passwd")))
    assert code == grpc.StatusCode.NOT_FOUND


@pytest.mark.asyncio(loop_scope="module")
async def test_edited_file_gets_a_new_address(served):
    client, _, root = served
    page = await client.call("ListDatasetImages", pb.ListDatasetImagesRequest(dataset_id="synth"))
    img = page.images[-1]
    path = root / img.name
    with Image.open(path) as im:
        im.convert("L").convert("RGB").save(path, format="PNG")
    fresh = await client.call("GetImage", pb.GetImageRequest(dataset_id="synth", name=img.name))
    assert fresh.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() != img.sha256
    code, _, _ = await _error(client.call("GetImage", pb.GetImageRequest(dataset_id="synth", sha256=img.sha256)))
    assert code == grpc.StatusCode.NOT_FOUND


@pytest.mark.asyncio(loop_scope="module")
async def test_list_jobs_pages_newest_first_without_repeats(served):
    client, app, _ = served

    async def body(handle) -> str:
        return result_column(pb.JobResult())

    ids = []
    for _ in range(5):
        ids.append(app.jobs.start(pb.JOB_KIND_PREPASS, "synth", 0, body).id)
        await asyncio.sleep(0.002)
    for job_id in ids:
        await app.jobs.wait(job_id)
    first = await client.call("ListJobs", pb.ListJobsRequest(page_size=2))
    assert [j.id for j in first.jobs] == ids[::-1][:2] and first.next_page_token
    # a job started between pages does not shift the next page
    app.jobs.start(pb.JOB_KIND_PREPASS, "synth", 0, body)
    time.sleep(0.002)
    rest, token = [], first.next_page_token
    while token:
        page = await client.call("ListJobs", pb.ListJobsRequest(page_size=2, page_token=token))
        rest.extend(j.id for j in page.jobs)
        token = page.next_page_token
    assert rest == ids[::-1][2:]
    newest = await client.call("ListJobs", pb.ListJobsRequest(page_size=3))
    assert len(newest.jobs) == 3 and newest.jobs[0].id not in ids
    code, _, message = await _error(client.call("ListJobs", pb.ListJobsRequest(page_token="e30")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in message


async def _all(client, rpc: str, request, field: str, key: str) -> tuple[list[str], int]:
    names, token, pages = [], "", 0
    while True:
        request.page_token = token
        page = await client.call(rpc, request)
        names += [getattr(x, key) for x in getattr(page, field)]
        pages += 1
        token = page.next_page_token
        if not token:
            return names, pages


@pytest.mark.asyncio(loop_scope="module")
async def test_catalog_lists_page_by_key_and_refuse_foreign_tokens(served):
    client, _, _ = served
    for name in ("g-c", "g-a", "g-b"):
        await client.call("PutGlossary", pb.PutGlossaryRequest(name=name, text="circle: round thing"))
    for rid in ("r-b", "r-c", "r-a"):
        await client.call("PutRecipe", pb.PutRecipeRequest(recipe=pb.Recipe(id=rid, name=rid)))
    names, pages = await _all(client, "ListGlossaries", pb.ListGlossariesRequest(page_size=2), "glossaries", "name")
    assert names == sorted(names) and {"g-a", "g-b", "g-c"} <= set(names) and pages == -(-len(names) // 2)
    ids, pages = await _all(client, "ListRecipes", pb.ListRecipesRequest(page_size=1), "recipes", "id")
    assert ids == sorted(ids) and {"r-a", "r-b", "r-c"} <= set(ids) and pages == len(ids)
    datasets, _ = await _all(client, "ListDatasets", pb.ListDatasetsRequest(page_size=1), "datasets", "id")
    assert datasets == ["synth"]
    first = await client.call("ListRecipes", pb.ListRecipesRequest(page_size=1))
    code, _, message = await _error(client.call("ListGlossaries", pb.ListGlossariesRequest(
        page_token=first.next_page_token)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in message
