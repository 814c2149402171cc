"""What every backbone family shares: crop preprocessing, batching to the
device, and the pooling that turns token states into one vector per crop.

Preprocessing resizes each (already context-padded) crop straight to the
model's input size with the checkpoint's own mean/std. The stock CLIP image
processor resizes the short side and then centre-crops, which cuts the ends
off a non-square box; a classifier of boxes must see the whole box.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

Pool = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None", tuple[int, int]], torch.Tensor]


def _grid_mean(patches: torch.Tensor, grid_hw: tuple[int, int], cells: int = 2) -> torch.Tensor:
    """Patch tokens averaged over a cells x cells spatial grid, flattened: keeps
    where things are in the crop (a square's filled corners against a circle's
    empty ones), which one global mean loses."""
    b, n, d = patches.shape
    gh, gw = grid_hw
    if gh * gw != n:  # unknown layout: fall back to a global mean per cell slot
        return patches.mean(dim=1).repeat(1, cells * cells)
    grid = patches.reshape(b, gh, gw, d).permute(0, 3, 1, 2)
    return torch.nn.functional.adaptive_avg_pool2d(grid, cells).flatten(1)


#: pooling name -> fn(cls_state, patch_tokens, projected, patch_grid_hw) -> (B, D)
POOLINGS: dict[str, Pool] = {
    "cls": lambda cls, patches, proj, grid: cls,
    "mean": lambda cls, patches, proj, grid: patches.mean(dim=1),
    "cls_mean": lambda cls, patches, proj, grid: torch.cat([cls, patches.mean(dim=1)], dim=1),
    "cls_grid": lambda cls, patches, proj, grid: torch.cat([cls, _grid_mean(patches, grid)], dim=1),
    "projection": lambda cls, patches, proj, grid: proj if proj is not None else cls,
}


def quiet_transformers() -> None:
    """Loading a CLIP checkpoint into its vision tower alone prints a table of
    unused text weights; the service logs its own load events instead."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def input_geometry(processor) -> tuple[int, int]:
    """(height, width) the checkpoint was trained at, from its image processor."""
    def hw(size) -> tuple[int, int] | None:
        if size is None:
            return None
        get = size.get if isinstance(size, dict) else (lambda k: getattr(size, k, None))
        height, width, edge = get("height"), get("width"), get("shortest_edge")
        if height and width:
            return int(height), int(width)
        if edge:
            return int(edge), int(edge)
        return None

    if getattr(processor, "do_center_crop", False):
        got = hw(getattr(processor, "crop_size", None))
        if got:
            return got
    got = hw(getattr(processor, "size", None))
    if got is None:
        raise ValueError("image processor has no usable size")
    return got


@dataclass
class HFBackbone:
    """A transformers vision model behind `embed(crops) -> (n, dim) float32`.

    `forward(pixel_values) -> (cls_state, patch_tokens, projected | None)` is
    the only family-specific part.
    """

    family: str
    model: torch.nn.Module
    forward: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]
    input_hw: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    patch: int = 16
    device: str = "cpu"
    pooling: str = "cls"
    dim: int = 0
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {self.pooling!r}; one of {sorted(POOLINGS)}")
        self.model.to(self.device).eval()
        self._mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        self._std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        if not self.dim:  # one forward pass: learns the width and warms the kernels up
            self.dim = int(self.embed([np.zeros((self.input_hw[0], self.input_hw[1], 3), np.uint8)]).shape[1])

    def preprocess(self, crops: Sequence[np.ndarray]) -> torch.Tensor:
        h, w = self.input_hw
        batch = np.empty((len(crops), h, w, 3), dtype=np.uint8)
        for i, crop in enumerate(crops):
            img = Image.fromarray(np.ascontiguousarray(crop))
            batch[i] = np.asarray(img.resize((w, h), Image.BICUBIC) if img.size != (w, h) else img)
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
        return (x - self._mean) / self._std

    @torch.inference_mode()
    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        if not crops:
            return np.zeros((0, self.dim), dtype=np.float32)
        pixels = self.preprocess(crops).to(self.device)
        cls, patches, proj = self.forward(pixels)
        grid = (self.input_hw[0] // self.patch, self.input_hw[1] // self.patch)
        out = POOLINGS[self.pooling](cls, patches, proj, grid)
        return out.float().cpu().numpy()


def load_processor_stats(processor) -> dict:
    """Input size and normalisation from a checkpoint's image processor."""
    mean = tuple(float(v) for v in (getattr(processor, "image_mean", None) or (0.5, 0.5, 0.5)))
    std = tuple(float(v) for v in (getattr(processor, "image_std", None) or (0.5, 0.5, 0.5)))
    if len(mean) != 3 or len(std) != 3 or not all(math.isfinite(v) and v > 0 for v in std):
        raise ValueError("image processor mean/std must have 3 finite channels")
    return {"input_hw": input_geometry(processor), "mean": mean, "std": std}
