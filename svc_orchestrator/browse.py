"""Read-only views for clients that browse: a dataset's images page by page, and their bytes.

Images are content-addressed: every listed image carries the sha256 of its file, GetImage answers
by name or by that hash, and a client caches by (sha256, max_side). Hashes are kept per file
(path, size, mtime), so an edited file gets a new address without a restart. Pages are
AIP-158 (page_size, opaque page_token; see tator_core/paging.py).
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from svc_orchestrator.datasets import Dataset, ImageItem
from tator_core import errors
from tator_core.cache import BoundedLRU
from tator_core.convert import Corners
from tator_core.images import sha256_hex
from tator_core.paging import DEFAULT_PAGE_SIZE, decode_offset, encode_token

THUMB_CACHE_ENTRIES = 1024  # JPEG thumbnails of a few KB each: a few MB at most
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "BMP": "image/bmp", "TIFF": "image/tiff",
         "MPO": "image/jpeg"}


@dataclass(frozen=True)
class ImageView:
    """One listed image: its content address, size and ground-truth boxes (label, corners)."""

    name: str
    split: str
    sha256: str
    width: int
    height: int
    ground_truth: tuple[tuple[str, Corners], ...] = ()


@dataclass(frozen=True)
class ImagePage:
    images: tuple[ImageView, ...]
    total_size: int
    next_page_token: str = ""


@dataclass(frozen=True)
class ImageBytes:
    """An image (or its JPEG thumbnail) with its content address; `mime_type` names `data`'s format."""

    name: str
    sha256: str
    width: int
    height: int
    data: bytes
    mime_type: str


class ImageBrowser:
    """Hashes, sizes and thumbnails of dataset images, bounded and thread-safe."""

    def __init__(self, *, max_message_bytes: int, thumb_entries: int = THUMB_CACHE_ENTRIES) -> None:
        self.max_message_bytes = max_message_bytes
        self._hashes: dict[str, tuple[tuple[int, int], str]] = {}
        self._thumbs: BoundedLRU[tuple[str, int], bytes] = BoundedLRU(thumb_entries)
        self._lock = threading.Lock()

    # --- content addresses -------------------------------------------------------------------
    def sha256(self, item: ImageItem) -> str:
        st = item.path.stat()
        key = str(item.path)
        stamp = (st.st_size, st.st_mtime_ns)
        with self._lock:
            hit = self._hashes.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        digest = sha256_hex(item.path.read_bytes())
        with self._lock:
            self._hashes[key] = (stamp, digest)
        return digest

    def find(self, ds: Dataset, sha: str) -> ImageItem:
        for item in ds.items():
            if self.sha256(item) == sha:
                return item
        raise errors.not_found("NOT_FOUND", f"dataset {ds.id!r} has no image with sha256 {sha}",
                               dataset_id=ds.id, sha256=sha)

    # --- listing -------------------------------------------------------------------------------
    def view(self, ds: Dataset, item: ImageItem) -> ImageView:
        w, h = ds.image_size(item)
        return ImageView(name=item.name, split=item.split, sha256=self.sha256(item), width=w, height=h,
                         ground_truth=tuple((g.label, g.box) for g in ds.ground_truth(item)))

    def list_images(self, ds: Dataset, *, split: str = "", page_size: int = 0, page_token: str = "") -> ImagePage:
        if split and split not in ds.splits:
            raise errors.invalid_argument("split", f"dataset {ds.id!r} has no split {split!r} "
                                          f"(splits: {', '.join(sorted(ds.splits))})")
        items = ds.items(split or None)
        query = {"dataset": ds.id, "split": split}
        start = decode_offset(page_token, query)
        size = page_size or DEFAULT_PAGE_SIZE
        page = items[start:start + size]
        end = start + len(page)
        return ImagePage(images=tuple(self.view(ds, it) for it in page), total_size=len(items),
                         next_page_token=encode_token(query, end) if end < len(items) else "")

    # --- bytes ---------------------------------------------------------------------------------
    def get_image(self, ds: Dataset, *, name: str | None = None, sha256: str | None = None,
                  max_side: int = 0) -> ImageBytes:
        """By content address or by name (None: not asked; the request sets exactly one of them)."""
        if sha256 is not None:
            item = self.find(ds, sha256)
        elif name is not None:
            item = ds.item(name)
        else:
            raise errors.invalid_argument("image", "set name or sha256")
        sha = self.sha256(item)
        w, h = ds.image_size(item)
        if max_side:
            return ImageBytes(name=item.name, sha256=sha, width=w, height=h,
                              data=self.thumbnail(item, sha, max_side), mime_type="image/jpeg")
        size = item.path.stat().st_size
        if size > self.max_message_bytes - 4096:
            raise errors.resource_exhausted(f"image {item.name!r} is {size} bytes, over the message limit; "
                                            "ask for a thumbnail (max_side)", dataset_id=ds.id, image=item.name)
        data = item.path.read_bytes()
        return ImageBytes(name=item.name, sha256=sha, width=w, height=h, data=data,
                          mime_type=_MIME.get(_format(data), "application/octet-stream"))

    def thumbnail(self, item: ImageItem, sha: str, max_side: int) -> bytes:
        key = (sha, max_side)
        hit = self._thumbs.get(key)
        if hit is not None:
            return hit
        try:
            with Image.open(item.path) as img:
                img.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale, bounded memory
                img = ImageOps.exif_transpose(img).convert("RGB")
                img.thumbnail((max_side, max_side))
                buf = io.BytesIO()
                img.save(buf, format="JPEG", quality=82)
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
            raise errors.failed_precondition("IMAGE_INVALID", f"cannot decode {item.name!r}: {exc}",
                                             image=item.name) from None
        data = buf.getvalue()
        self._thumbs.put(key, data)
        return data


def _format(data: bytes) -> str:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return str(img.format)
    except (OSError, UnidentifiedImageError):
        return ""
