"""Read-only views for clients that browse: a dataset's images page by page, and their bytes.

Images are content-addressed: every listed image carries the sha256 of its file, GetImage answers
by name or by that hash, and a client caches by (sha256, max_side). Hashes are kept per file
(path, size, mtime), so an edited file gets a new address without a restart. Pages are
AIP-158 (page_size, opaque page_token; see tator_core/paging.py).
"""

from __future__ import annotations

import io
import threading

from PIL import Image, ImageOps, UnidentifiedImageError

from svc_orchestrator.datasets import Dataset, ImageItem
from tator_core import errors
from tator_core.cache import BoundedLRU
from tator_core.convert import box_pb
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.images import sha256_hex
from tator_core.paging import DEFAULT_PAGE_SIZE, decode_offset, encode_token

THUMB_CACHE_ENTRIES = 1024  # JPEG thumbnails of a few KB each: a few MB at most
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "BMP": "image/bmp", "TIFF": "image/tiff",
         "MPO": "image/jpeg"}


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
    def image_pb(self, ds: Dataset, item: ImageItem) -> pb.DatasetImage:
        w, h = ds.image_size(item)
        gt = [pb.GroundTruthBox(label=g.label, box=box_pb(g.box))
              for g in ds.ground_truth(item)]
        return pb.DatasetImage(name=item.name, split=item.split, sha256=self.sha256(item), width=w, height=h,
                               ground_truth=gt)

    def list_images(self, ds: Dataset, request: pb.ListDatasetImagesRequest) -> pb.ListDatasetImagesResponse:
        if request.split and request.split not in ds.splits:
            raise errors.invalid_argument("split", f"dataset {ds.id!r} has no split {request.split!r} "
                                          f"(splits: {', '.join(sorted(ds.splits))})")
        items = ds.items(request.split or None)
        query = {"dataset": ds.id, "split": request.split}
        start = decode_offset(request.page_token, query)
        size = request.page_size or DEFAULT_PAGE_SIZE
        page = items[start:start + size]
        end = start + len(page)
        return pb.ListDatasetImagesResponse(images=[self.image_pb(ds, it) for it in page], total_size=len(items),
                                            next_page_token=encode_token(query, end) if end < len(items) else "")

    # --- bytes ---------------------------------------------------------------------------------
    def get_image(self, ds: Dataset, request: pb.GetImageRequest) -> pb.GetImageResponse:
        which = request.WhichOneof("image")
        if which == "sha256":
            item = self.find(ds, request.sha256)
        elif which == "name":
            item = ds.item(request.name)
        else:
            raise errors.invalid_argument("image", "set name or sha256")
        sha = self.sha256(item)
        w, h = ds.image_size(item)
        out = pb.GetImageResponse(sha256=sha, width=w, height=h, name=item.name)
        if request.max_side:
            out.data, out.mime_type = self.thumbnail(item, sha, request.max_side), "image/jpeg"
            return out
        size = item.path.stat().st_size
        if size > self.max_message_bytes - 4096:
            raise errors.resource_exhausted(f"image {item.name!r} is {size} bytes, over the message limit; "
                                            "ask for a thumbnail (max_side)", dataset_id=ds.id, image=item.name)
        data = item.path.read_bytes()
        out.data = data
        out.mime_type = _MIME.get(_format(data), "application/octet-stream")
        return out

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
