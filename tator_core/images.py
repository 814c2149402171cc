"""Content-addressed image store.

Every service decodes an image's bytes once (Pillow, EXIF orientation applied,
RGB) and keeps the decoded pixels in a bounded LRU keyed by sha256. Later
requests send the hash only; tiles and windows are coordinates on the cached
image, never re-encoded crops. A reference without bytes that the store does
not hold raises FAILED_PRECONDITION / IMAGE_NOT_CACHED, which the client
helper answers by resending once with bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import struct
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tator_core import errors
from tator_core.cache import BoundedLRU
from tator_core.metrics import IMAGE_CACHE, IMAGES_DECODED

ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "BMP", "TIFF", "MPO"})
DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MIN_SIDE = 4
DEFAULT_MAX_ASPECT = 50.0


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class DecodedImage:
    """An RGB image decoded once; `array` is HxWx3 uint8 and read-only."""

    sha256: str
    array: np.ndarray
    encoded_size: int

    @property
    def width(self) -> int:
        return int(self.array.shape[1])

    @property
    def height(self) -> int:
        return int(self.array.shape[0])

    def pil(self) -> Image.Image:
        return Image.fromarray(self.array)

    def crop(self, box: tuple[float, float, float, float]) -> np.ndarray:
        """A view of the pixels inside box (clipped to the image)."""
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        x1, y1 = max(0, x1), max(0, y1)
        x2, y2 = min(self.width, x2), min(self.height, y2)
        return self.array[y1:y2, x1:x2]


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Pixels as HxWx3 uint8, whatever the stored depth and channels.

    Deep images are scaled, not clipped: 16-bit samples by their full range
    (65535 -> 255; converting them straight to 8 bits turned every pixel
    white), float samples as 0..1 when they fit there, else as 0..255 (NaN and
    inf become 0 / the clip bound; a straight conversion turned them black).
    Transparency is composited over white, so a transparent background looks
    like the paper it is usually drawn on rather than like whatever colour the
    hidden pixels happen to hold.
    """
    mode = img.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img)
        if mode == "F":
            f = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
            finite_max = float(f.max()) if f.size else 0.0
            scaled = f * 255.0 if finite_max <= 1.0 else f
        else:
            wide = arr.astype(np.int64)
            # Mode I holds 16-bit PNGs on some Pillow versions and 32-bit TIFFs on all.
            top = 65535.0 if mode != "I" or int(wide.max(initial=0)) <= 65535 else float(2**32 - 1)
            scaled = (wide.clip(0, None) / top) * 255.0
        grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info) \
        or (mode in ("RGB", "L") and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.uint8)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, fld: str = "image.data",
                 sha256: str | None = None, min_side: int = DEFAULT_MIN_SIDE,
                 max_aspect: float = DEFAULT_MAX_ASPECT,
                 reserve: Callable[[int], contextlib.AbstractContextManager[object]] | None = None) -> DecodedImage:
    """Decode and check encoded bytes; every failure is INVALID_ARGUMENT.

    Size checks read only the header, so neither a bomb nor a sliver costs
    memory or model time. `reserve(pixels)` (the store's service-wide decode
    budget) is held while the pixels are materialised.
    """
    if not data:
        raise errors.invalid_argument(fld, "image bytes are empty", "IMAGE_INVALID")
    digest = sha256_hex(data)
    if sha256 is not None and digest != sha256:
        raise errors.invalid_argument("image.sha256", f"bytes hash to {digest}, not {sha256}",
                                      "IMAGE_SHA_MISMATCH")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(io.BytesIO(data))
            if img.format not in ALLOWED_FORMATS:
                raise errors.invalid_argument(fld, f"unsupported image format {img.format}", "IMAGE_INVALID")
            w, h = img.size
            if w <= 0 or h <= 0:
                raise errors.invalid_argument(fld, "image has no pixels", "IMAGE_INVALID")
            # Checked before pixels are loaded, so a bomb never allocates.
            if w * h > max_pixels:
                raise errors.invalid_argument(fld, f"image is {w}x{h}, over the {max_pixels} pixel limit",
                                              "IMAGE_TOO_LARGE", width=w, height=h)
            # A sliver (1x5000) has almost no content but costs a full row of tiles.
            if min(w, h) < min_side or max(w, h) > max_aspect * min(w, h):
                raise errors.invalid_argument(
                    fld, f"image is {w}x{h}; each side must be at least {min_side} px and the long side at most "
                    f"{max_aspect:g} times the short one", "IMAGE_INVALID", width=w, height=h)
            with reserve(w * h) if reserve is not None else contextlib.nullcontext():
                img = ImageOps.exif_transpose(img)
                arr = _to_rgb(img).copy()
    except errors.TatorError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise errors.invalid_argument(fld, f"decompression bomb refused: {exc}", "IMAGE_TOO_LARGE") from exc
    except UnidentifiedImageError as exc:
        raise errors.invalid_argument(fld, "not a recognised image format", "IMAGE_INVALID") from exc
    except (OSError, SyntaxError, ValueError, EOFError, ImportError, TypeError, struct.error) as exc:
        # ImportError: a library may hook PIL.Image.open (ultralytics adds a HEIF
        # opener that tries to import a missing plugin on unreadable bytes).
        # The exception text is a decoder's, never a server path.
        raise errors.invalid_argument(fld, f"cannot decode image: {type(exc).__name__}: {exc}"[:300],
                                      "IMAGE_INVALID") from exc
    arr.setflags(write=False)
    return DecodedImage(sha256=digest, array=arr, encoded_size=len(data))


class ImageStore:
    """Bounded LRU of decoded images keyed by sha256 (thread-safe).

    Three operator budgets bound a service's image memory: `max_pixels` per
    image, `max_bytes` of decoded pixels held in the cache (items are evicted
    oldest first until both the byte and the item budget hold; an image larger
    than the whole byte budget is answered but not kept), and
    `max_decode_pixels`, the pixels all concurrent decodes may materialise at
    once (over it a request gets RESOURCE_EXHAUSTED, not a bigger heap).
    """

    def __init__(self, *, service: str = "tator", max_items: int = 64,
                 max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = 1 << 30,
                 max_decode_pixels: int | None = None, min_side: int = DEFAULT_MIN_SIDE,
                 max_aspect: float = DEFAULT_MAX_ASPECT) -> None:
        self.service = service
        self.max_items = max_items
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes
        self.max_decode_pixels = max_decode_pixels if max_decode_pixels is not None else 2 * max_pixels
        self.min_side, self.max_aspect = min_side, max_aspect
        self._items: BoundedLRU[str, DecodedImage] = BoundedLRU(max_items, max_bytes, lambda img: img.array.nbytes)
        self._lock = threading.Lock()
        self.decodes = 0
        self.decoding_pixels = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        """Bytes of the decoded images held."""
        return int(self._items.size)

    def get(self, sha256: str) -> DecodedImage | None:
        return self._items.get(sha256)

    def put(self, img: DecodedImage) -> None:
        """Keep a decoded image (an image larger than the whole byte bound is not kept)."""
        self._items.put(img.sha256, img)

    @contextlib.contextmanager
    def _reserve(self, pixels: int) -> Iterator[None]:
        with self._lock:
            if self.decoding_pixels + pixels > self.max_decode_pixels:
                raise errors.resource_exhausted(
                    f"{self.service} is decoding {self.decoding_pixels} pixels (budget {self.max_decode_pixels}); "
                    "retry later", limit=self.max_decode_pixels)
            self.decoding_pixels += pixels
        try:
            yield
        finally:
            with self._lock:
                self.decoding_pixels -= pixels

    def add_bytes(self, data: bytes, sha256: str | None = None, fld: str = "image.data") -> DecodedImage:
        img = decode_image(data, max_pixels=self.max_pixels, fld=fld, sha256=sha256, min_side=self.min_side,
                           max_aspect=self.max_aspect, reserve=self._reserve)
        self.decodes += 1
        IMAGES_DECODED.labels(self.service).inc()
        self.put(img)
        return img

    def resolve(self, ref: Any, fld: str = "image") -> DecodedImage:
        """Resolve a `tator.common.v1.ImageRef`: cached hash, else decode bytes.

        Bytes sent with a cached hash are still checked against it: answering a
        different picture for the cached one would be a wrong answer with OK.
        """
        sha = ref.sha256
        cached = self.get(sha)
        if cached is not None:
            if ref.HasField("data") and sha256_hex(ref.data) != sha:
                raise errors.invalid_argument(f"{fld}.sha256", f"bytes hash to {sha256_hex(ref.data)}, not {sha}",
                                              "IMAGE_SHA_MISMATCH")
            IMAGE_CACHE.labels(self.service, "hit").inc()
            return cached
        IMAGE_CACHE.labels(self.service, "miss").inc()
        if not ref.HasField("data"):
            raise errors.failed_precondition(
                "IMAGE_NOT_CACHED", f"image {sha} is not cached here; resend it with bytes", sha256=sha)
        return self.add_bytes(ref.data, sha256=sha, fld=f"{fld}.data")

    async def aresolve(self, ref: Any, fld: str = "image") -> DecodedImage:
        """`resolve` for a server: a cache hit answers inline, a decode runs on a
        worker thread so the event loop (and Health) never waits for pixels."""
        if not ref.HasField("data") and self.get(ref.sha256) is not None:
            return self.resolve(ref, fld)
        return await asyncio.to_thread(self.resolve, ref, fld)

    @classmethod
    def from_settings(cls, service: str, settings: Any) -> ImageStore:
        """The store a service builds from its settings object (one place for the budgets)."""
        return cls(service=service, max_items=settings.image_cache_items, max_pixels=settings.max_image_pixels,
                   max_bytes=settings.image_cache_mb * 1024 * 1024, max_decode_pixels=settings.max_decode_pixels,
                   min_side=settings.min_image_side, max_aspect=settings.max_image_aspect)
