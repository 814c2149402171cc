"""Binary mask <-> run-length encoding (`tator.common.v1.Mask`).

Runs alternate zeros and ones over the row-major flattened mask, starting
with zeros. Masks are cropped to their bounding box first (x0, y0 offsets)
so a small object in a large image stays small on the wire.
"""

from __future__ import annotations

import numpy as np

from tator_core.gen.tator.common.v1 import common_pb2


def encode(mask: np.ndarray, crop: bool = True) -> common_pb2.Mask:
    mask = np.asarray(mask).astype(bool)
    if mask.ndim == 3 and 1 in (mask.shape[0], mask.shape[-1]):
        mask = mask.reshape(mask.shape[1:] if mask.shape[0] == 1 else mask.shape[:-1])
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    x0 = y0 = 0
    if crop and mask.any():
        ys, xs = np.nonzero(mask)
        y0, x0 = int(ys.min()), int(xs.min())
        mask = mask[y0:int(ys.max()) + 1, x0:int(xs.max()) + 1]
    flat = mask.ravel().astype(np.int8)
    changes = np.flatnonzero(np.diff(np.concatenate(([0], flat, [1 - flat[-1] if flat.size else 0]))))
    counts = np.diff(np.concatenate(([0], changes))).tolist() if flat.size else []
    return common_pb2.Mask(height=mask.shape[0], width=mask.shape[1], counts=counts, x0=x0, y0=y0)


def decode(m: common_pb2.Mask, full_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Mask proto -> bool array (cropped, or placed into full_shape)."""
    flat = np.zeros(m.height * m.width, dtype=bool)
    pos, val = 0, False
    for c in m.counts:
        if val:
            flat[pos:pos + c] = True
        pos += c
        val = not val
    crop = flat.reshape(m.height, m.width)
    if full_shape is None:
        return crop
    out = np.zeros(full_shape, dtype=bool)
    h = max(0, min(m.height, full_shape[0] - m.y0))
    w = max(0, min(m.width, full_shape[1] - m.x0))
    out[m.y0:m.y0 + h, m.x0:m.x0 + w] = crop[:h, :w]
    return out
