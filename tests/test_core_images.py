"""Image store: decode once, verify hashes, refuse bad input with clear reasons."""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
from PIL import Image

from tator_core import errors
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.images import ImageStore, decode_image, sha256_hex


def png(w: int = 40, h: int = 30, colour=(200, 10, 10), fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, fmt, **kw)
    return buf.getvalue()


def ref(data: bytes, with_bytes: bool = True) -> common_pb2.ImageRef:
    r = common_pb2.ImageRef(sha256=sha256_hex(data))
    if with_bytes:
        r.data = data
    return r


def reason(exc: errors.TatorError) -> tuple[grpc.StatusCode, str]:
    return exc.code, exc.reason


def test_decode_rgb_and_readonly():
    img = decode_image(png(40, 30))
    assert (img.width, img.height) == (40, 30)
    assert img.array.dtype == np.uint8 and img.array.shape == (30, 40, 3)
    assert tuple(img.array[0, 0]) == (200, 10, 10)
    with pytest.raises(ValueError):
        img.array[0, 0, 0] = 1


def test_grayscale_and_rgba_become_rgb():
    buf = io.BytesIO()
    Image.new("LA", (8, 8), (100, 50)).save(buf, "PNG")
    assert decode_image(buf.getvalue()).array.shape == (8, 8, 3)


def test_exif_orientation_applied():
    im = Image.new("RGB", (40, 20), (0, 0, 0))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif)
    img = decode_image(buf.getvalue())
    assert (img.width, img.height) == (20, 40)


@pytest.mark.parametrize("data,why", [
    (b"", "IMAGE_INVALID"),
    (b"not an image at all", "IMAGE_INVALID"),
    (png()[:40], "IMAGE_INVALID"),  # truncated PNG
])
def test_corrupt_bytes_are_invalid_argument(data, why):
    with pytest.raises(errors.TatorError) as ei:
        decode_image(data)
    assert reason(ei.value) == (grpc.StatusCode.INVALID_ARGUMENT, why)
    assert ei.value.field_violations and ei.value.field_violations[0][0] == "image.data"


def test_unsupported_format_refused():
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "GIF")
    with pytest.raises(errors.TatorError) as ei:
        decode_image(buf.getvalue())
    assert ei.value.reason == "IMAGE_INVALID" and "GIF" in ei.value.message


def test_decompression_bomb_refused_before_allocation():
    # 1x1 pixels declared 30000x30000 in the header would allocate 2.7 GB if loaded.
    data = png(3000, 3000, (0, 0, 0))
    with pytest.raises(errors.TatorError) as ei:
        decode_image(data, max_pixels=1_000_000)
    assert reason(ei.value) == (grpc.StatusCode.INVALID_ARGUMENT, "IMAGE_TOO_LARGE")
    assert ei.value.metadata["width"] == "3000"


def test_wrong_sha_refused():
    data = png()
    with pytest.raises(errors.TatorError) as ei:
        decode_image(data, sha256="0" * 64)
    assert ei.value.reason == "IMAGE_SHA_MISMATCH"


def test_store_decodes_once_and_serves_by_hash():
    store = ImageStore(max_items=2)
    data = png()
    a = store.resolve(ref(data))
    b = store.resolve(ref(data, with_bytes=False))
    assert a is b and store.decodes == 1


def test_unknown_sha_is_image_not_cached():
    store = ImageStore()
    with pytest.raises(errors.TatorError) as ei:
        store.resolve(ref(png(), with_bytes=False))
    assert reason(ei.value) == (grpc.StatusCode.FAILED_PRECONDITION, "IMAGE_NOT_CACHED")


def test_lru_evicts_oldest():
    store = ImageStore(max_items=2)
    d1, d2, d3 = png(colour=(1, 1, 1)), png(colour=(2, 2, 2)), png(colour=(3, 3, 3))
    for d in (d1, d2):
        store.resolve(ref(d))
    store.resolve(ref(d1, with_bytes=False))  # touch d1: d2 is now oldest
    store.resolve(ref(d3))
    assert store.get(sha256_hex(d2)) is None
    assert store.get(sha256_hex(d1)) is not None and len(store) == 2


def test_crop_is_clipped_view():
    img = decode_image(png(40, 30))
    assert img.crop((-5, -5, 10, 10)).shape == (10, 10, 3)
    assert img.crop((35, 25, 100, 100)).shape == (5, 5, 3)
