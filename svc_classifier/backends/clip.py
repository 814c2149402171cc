"""CLIP vision tower (family "clip").

Only the vision tower and its projection are kept: a full CLIP checkpoint is
read through its vision sub-config, so the text tower never reaches the
device. Pooling (registry option `pooling`, see backends/base.py) defaults to
"projection", CLIP's image embedding.
"""

from __future__ import annotations

from pathlib import Path

import torch

from svc_classifier.backends.base import HFBackbone, load_processor_stats, quiet_transformers

DEFAULT_POOLING = "projection"


def load(path: Path, device: str = "cpu", options: dict | None = None) -> HFBackbone:
    from transformers import AutoConfig, AutoImageProcessor, CLIPVisionModelWithProjection

    quiet_transformers()
    options = options or {}
    config = AutoConfig.from_pretrained(path)
    if config.model_type == "clip":  # full CLIP: keep the vision half
        vision = config.vision_config
        vision.projection_dim = config.projection_dim
        model = CLIPVisionModelWithProjection.from_pretrained(path, config=vision)
    else:
        model = CLIPVisionModelWithProjection.from_pretrained(path)
    processor = AutoImageProcessor.from_pretrained(path)

    def forward(pixels: torch.Tensor):
        out = model(pixel_values=pixels, output_hidden_states=False)
        # image_embeds = projection of the post-layernormed CLS token
        cls = model.vision_model.post_layernorm(out.last_hidden_state[:, 0])
        return cls, out.last_hidden_state[:, 1:], out.image_embeds

    return HFBackbone(family="clip", model=model, forward=forward, device=device,
                      patch=int(model.config.patch_size), pooling=str(options.get("pooling", DEFAULT_POOLING)),
                      **load_processor_stats(processor))
