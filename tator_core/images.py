"""Content-addressed image store.

Every service decodes an image's bytes once (Pillow, EXIF orientation applied,
RGB) and keeps the decoded pixels in a bounded LRU keyed by sha256. Later
requests send the hash only; tiles and windows are coordinates on the cached
image, never re-encoded crops. A reference without bytes that the store does
not hold raises FAILED_PRECONDITION / IMAGE_NOT_CACHED, which the client
helper answers by resending once with bytes.
"""

from __future__ import annotations

import hashlib
import io
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tator_core import errors
from tator_core.metrics import IMAGE_CACHE, IMAGES_DECODED

ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "BMP", "TIFF", "MPO"})
DEFAULT_MAX_PIXELS = 50_000_000


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


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, fld: str = "image.data",
                 sha256: str | None = None) -> DecodedImage:
    """Decode and check encoded bytes; every failure is INVALID_ARGUMENT."""
    if not data:
        raise errors.invalid_argument(fld, "image bytes are empty", "IMAGE_INVALID")
    digest = sha256_hex(data)
    if sha256 is not None and digest != sha256:
        raise errors.invalid_argument("image.sha256", f"bytes hash to {digest}, not {sha256}",
                                      "IMAGE_SHA_MISMATCH")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format not in ALLOWED_FORMATS:
                raise errors.invalid_argument(fld, f"unsupported image format {img.format}", "IMAGE_INVALID")
            w, h = img.size
            if w <= 0 or h <= 0:
                raise errors.invalid_argument(fld, "image has no pixels", "IMAGE_INVALID")
            # Checked before pixels are loaded, so a bomb never allocates.
            if w * h > max_pixels:
                raise errors.invalid_argument(fld, f"image is {w}x{h}, over the {max_pixels} pixel limit",
                                              "IMAGE_TOO_LARGE", width=w, height=h)
            img = ImageOps.exif_transpose(img)
            arr = np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except errors.TatorError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise errors.invalid_argument(fld, f"decompression bomb refused: {exc}", "IMAGE_TOO_LARGE") from exc
    except UnidentifiedImageError as exc:
        raise errors.invalid_argument(fld, "not a recognised image format", "IMAGE_INVALID") from exc
    except (OSError, SyntaxError, ValueError, EOFError, ImportError) as exc:
        # ImportError: a library may hook PIL.Image.open (ultralytics adds a HEIF
        # opener that tries to import a missing plugin on unreadable bytes).
        raise errors.invalid_argument(fld, f"cannot decode image: {exc}", "IMAGE_INVALID") from exc
    arr.setflags(write=False)
    return DecodedImage(sha256=digest, array=arr, encoded_size=len(data))


class ImageStore:
    """Bounded LRU of decoded images keyed by sha256 (thread-safe)."""

    def __init__(self, *, service: str = "tator", max_items: int = 64,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.service = service
        self.max_items = max_items
        self.max_pixels = max_pixels
        self._items: OrderedDict[str, DecodedImage] = OrderedDict()
        self._lock = threading.Lock()
        self.decodes = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, sha256: str) -> DecodedImage | None:
        with self._lock:
            img = self._items.get(sha256)
            if img is not None:
                self._items.move_to_end(sha256)
            return img

    def put(self, img: DecodedImage) -> None:
        with self._lock:
            self._items[img.sha256] = img
            self._items.move_to_end(img.sha256)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def add_bytes(self, data: bytes, sha256: str | None = None, fld: str = "image.data") -> DecodedImage:
        img = decode_image(data, max_pixels=self.max_pixels, fld=fld, sha256=sha256)
        self.decodes += 1
        IMAGES_DECODED.labels(self.service).inc()
        self.put(img)
        return img

    def resolve(self, ref, fld: str = "image") -> DecodedImage:
        """Resolve a `tator.common.v1.ImageRef`: cached hash, else decode bytes."""
        sha = ref.sha256
        cached = self.get(sha)
        if cached is not None:
            IMAGE_CACHE.labels(self.service, "hit").inc()
            return cached
        IMAGE_CACHE.labels(self.service, "miss").inc()
        if not ref.HasField("data"):
            raise errors.failed_precondition(
                "IMAGE_NOT_CACHED", f"image {sha} is not cached here; resend it with bytes", sha256=sha)
        return self.add_bytes(ref.data, sha256=sha, fld=f"{fld}.data")
