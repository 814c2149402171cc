"""Hostile images and queued work: each class from the hardening review keeps a test here.

Deep images decode to visible pixels, transparency is composited on white, a cached hash never
answers for different bytes, decoded pixels are held under a byte budget, concurrent decodes under
a pixel budget, slivers are refused from the header, and a model unloaded under queued calls
answers every one of them.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time

import grpc
import numpy as np
import pytest
from PIL import Image

from tator_core import errors
from tator_core.batching import MicroBatcher
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.images import ImageStore, decode_image, sha256_hex


def encode(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def ref(data: bytes, sha: str | None = None) -> common_pb2.ImageRef:
    return common_pb2.ImageRef(sha256=sha or sha256_hex(data), data=data)


def test_16bit_png_keeps_its_gradient():
    # A ramp 0..65535 must map onto 0..255, not clip to white.
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (16, 1))
    arr = decode_image(encode(Image.fromarray(ramp))).array
    assert arr[0, 0, 0] == 0 and arr[0, -1, 0] == 255
    assert 120 <= arr[0, 32, 0] <= 135  # mid-grey in the middle
    assert (arr[..., 0] == arr[..., 2]).all()


def test_float_tiff_in_unit_range_is_scaled():
    ramp = np.tile(np.linspace(0.0, 1.0, 64, dtype=np.float32), (16, 1))
    arr = decode_image(encode(Image.fromarray(ramp), "TIFF")).array
    assert arr[0, 0, 0] == 0 and arr[0, -1, 0] == 255 and 120 <= arr[0, 32, 0] <= 135


def test_float_tiff_with_nan_and_inf_decodes():
    vals = np.full((8, 8), 0.5, dtype=np.float32)
    vals[0, 0], vals[0, 1] = np.nan, np.inf
    arr = decode_image(encode(Image.fromarray(vals), "TIFF")).array
    assert arr.shape == (8, 8, 3) and arr[0, 0, 0] == 0


def test_alpha_is_composited_on_white():
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))       # fully transparent black
    rgba.putpixel((0, 0), (255, 0, 0, 255))              # one opaque red pixel
    arr = decode_image(encode(rgba)).array
    assert tuple(arr[4, 4]) == (255, 255, 255)
    assert tuple(arr[0, 0]) == (255, 0, 0)
    half = Image.new("LA", (8, 8), (0, 128))             # black at half alpha -> mid grey
    assert 120 <= decode_image(encode(half)).array[0, 0, 0] <= 135


def test_cached_sha_with_different_bytes_is_refused():
    store = ImageStore()
    red = encode(Image.new("RGB", (8, 8), (255, 0, 0)))
    blue = encode(Image.new("RGB", (8, 8), (0, 0, 255)))
    store.resolve(ref(red))
    with pytest.raises(errors.TatorError) as ei:
        store.resolve(ref(blue, sha=sha256_hex(red)))
    assert (ei.value.code, ei.value.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "IMAGE_SHA_MISMATCH")


def test_cache_holds_a_byte_budget_not_an_item_count():
    store = ImageStore(max_items=64, max_bytes=100 * 100 * 3 * 2)  # room for two 100x100 images
    shas = []
    for i in range(5):
        data = encode(Image.new("RGB", (100, 100), (i, i, i)))
        store.resolve(ref(data))
        shas.append(sha256_hex(data))
    assert len(store) == 2 and store.nbytes <= store.max_bytes
    assert store.get(shas[-1]) is not None and store.get(shas[0]) is None
    big = encode(Image.new("RGB", (300, 300)))
    assert store.resolve(ref(big)).width == 300   # answered ...
    assert store.get(sha256_hex(big)) is None     # ... but not kept: it alone is over the budget


def test_concurrent_decodes_share_a_pixel_budget():
    store = ImageStore(max_decode_pixels=10_000)
    with store._reserve(9_000):
        with pytest.raises(errors.TatorError) as ei:
            store.resolve(ref(encode(Image.new("RGB", (40, 40)))))
        assert (ei.value.code, ei.value.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED")
    assert store.decoding_pixels == 0
    assert store.resolve(ref(encode(Image.new("RGB", (40, 40))))).width == 40


@pytest.mark.parametrize("size", [(1, 5000), (5000, 1), (2, 2), (4000, 40)])
def test_slivers_and_specks_are_refused_from_the_header(size):
    with pytest.raises(errors.TatorError) as ei:
        decode_image(encode(Image.new("L", size)))
    assert (ei.value.code, ei.value.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "IMAGE_INVALID")


def test_server_resolve_decodes_off_the_event_loop():
    store = ImageStore()
    data = encode(Image.new("RGB", (64, 64)))
    loop_thread: list[int] = []
    seen: list[int] = []
    real = store.add_bytes

    def spy(*a, **kw):
        seen.append(threading.get_ident())
        return real(*a, **kw)

    store.add_bytes = spy  # type: ignore[method-assign]  # the test spies on decodes

    async def main():
        loop_thread.append(threading.get_ident())
        return await store.aresolve(ref(data))

    assert asyncio.run(main()).width == 64
    assert seen and seen[0] != loop_thread[0]


async def test_unloading_a_batcher_answers_every_queued_call():
    gate = threading.Event()

    def slow(items):
        gate.wait(5)
        return items

    b = MicroBatcher(slow, service="t", max_batch=1, max_delay_ms=0, max_queue=16)
    calls = [asyncio.create_task(b.submit(i)) for i in range(6)]
    await asyncio.sleep(0.05)
    closing = asyncio.create_task(b.close(drain_s=0.2))
    await asyncio.sleep(0.3)
    gate.set()
    started = time.monotonic()
    out = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)
    await closing
    assert time.monotonic() - started < 5
    refused = [o for o in out if isinstance(o, errors.TatorError)]
    assert refused and all((e.code, e.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "MODEL_REQUIRED")
                           for e in refused)
    assert all(isinstance(o, (tuple, errors.TatorError)) for o in out)
    with pytest.raises(errors.TatorError):
        await b.submit(99)


async def test_unload_lets_queued_work_finish_when_it_can():
    b = MicroBatcher(lambda items: [i + 1 for i in items], service="t", max_batch=2, max_delay_ms=0)
    calls = [asyncio.create_task(b.submit(i)) for i in range(5)]
    await asyncio.sleep(0)
    await b.close()
    assert [r for r, _ in await asyncio.gather(*calls)] == [1, 2, 3, 4, 5]


def test_labelmaps_and_glossaries_from_files_drop_control_characters():
    from tator_core.labels import LabelmapError, parse_glossary, validate_labelmap

    for hostile in ("car\x00", "car\x1b[31m", "car\u202e", "car\x85"):
        with pytest.raises(LabelmapError):
            validate_labelmap(["ok", hostile])
    parsed = parse_glossary('{"car": ["auto\\u202e", "sedan"], "car\\u0000": ["x"], "bus": ["coach\\u001b[2J"]}')
    assert parsed == {"car": ["sedan"], "bus": []}
