"""DINOv3 ViT (family "dinov3").

Pooling defaults to "cls_mean": the CLS token next to the mean of the patch
tokens (register tokens left out), the linear-probe recipe of the DINO papers.
"""

from __future__ import annotations

from pathlib import Path

import torch

from svc_classifier.backends.base import HFBackbone, load_processor_stats, quiet_transformers

DEFAULT_POOLING = "cls_mean"


def load(path: Path, device: str = "cpu", options: dict | None = None) -> HFBackbone:
    from transformers import AutoImageProcessor, AutoModel

    quiet_transformers()
    options = options or {}
    model = AutoModel.from_pretrained(path)
    processor = AutoImageProcessor.from_pretrained(path)
    skip = 1 + int(getattr(model.config, "num_register_tokens", 0) or 0)

    def forward(pixels: torch.Tensor):
        out = model(pixel_values=pixels)
        return out.pooler_output, out.last_hidden_state[:, skip:], None

    return HFBackbone(family="dinov3", model=model, forward=forward, device=device,
                      patch=int(model.config.patch_size), pooling=str(options.get("pooling", DEFAULT_POOLING)),
                      **load_processor_stats(processor))
