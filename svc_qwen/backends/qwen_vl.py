"""Qwen2.5-VL and Qwen3-VL on transformers, loaded from a local directory.

The model class is chosen from `config.json`'s `model_type`, so a real
checkpoint and the tiny test model take the same path.

Image-first. The vision tower is the expensive part of a VLM call, and
transformers (5.x) lets `generate` take pre-encoded image features
(`mm_encoder_outputs={"image": ...}`) instead of `pixel_values`. So `encode`
runs the tower once per distinct image region, and every prompt on that
region reuses the features: the full-frame features serve the full caption
and any later prompt on the same image; an LRU keyed by (image sha256, region)
keeps them across requests. Greedy output is identical to the pixel path
(tests check it).

What the API does not allow: the window captions of WINDOWED mode cannot be
cut out of the full-frame features. The Qwen vision towers are not local —
Qwen2.5-VL has full-attention blocks and Qwen3-VL global attention with learned
position embeddings interpolated to the grid, plus deepstack features from
inner layers — so a region of the full-frame output is not what the model
sees for that crop. Windowing also exists to give each region more pixels
than the full frame gets under the processor's pixel budget, which sliced
features cannot provide. So each window crop gets its own encoder pass: all
crops of a request in one batched `encode` call, each crop encoded once and
reused by every prompt that needs it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from tator_core.cache import BoundedLRU

SUPPORTED = {
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    "qwen3_vl": "Qwen3VLForConditionalGeneration",
}
MAX_ASPECT = 100.0  # the Qwen image processor refuses aspect ratios over 200
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def select_dtype(name: str, device: str) -> torch.dtype:
    """Registry option `dtype`: `auto` is bfloat16 on a GPU that computes it natively, else float32 (a CPU,
    or a GPU without bf16 such as a V100 or T4, where bf16 would be emulated and slower than float32)."""
    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
    if name not in _DTYPES:
        raise ValueError(f"option dtype must be auto or one of {sorted(_DTYPES)}, not {name!r}")
    return _DTYPES[name]


class UnsupportedCheckpoint(ValueError):
    """The directory holds something other than a supported Qwen-VL model."""


@dataclass(frozen=True)
class GenSettings:
    """Decoding settings of one request (hashable: part of cache keys)."""

    max_new_tokens: int
    do_sample: bool = False
    temperature: float | None = None
    top_p: float | None = None
    seed: int = 0


@dataclass
class VisionFeatures:
    """Vision-tower output for one image region, ready to splice into a prompt."""

    grid_thw: torch.Tensor                      # (3,) patch grid the tokens came from
    pooled: torch.Tensor                        # (n_tokens, hidden) merged image tokens
    deepstack: tuple[torch.Tensor, ...] | None  # Qwen3-VL inner-layer features, one per layer
    out_cls: type

    @property
    def n_tokens(self) -> int:
        return int(self.pooled.shape[0])


@dataclass
class Generated:
    """One decoded answer."""

    text: str
    tokens: int       # new tokens before end-of-turn
    hit_limit: bool   # stopped by max_new_tokens, not by the model


def read_model_type(path: Path) -> str:
    try:
        cfg = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise UnsupportedCheckpoint(f"cannot read {path}/config.json: {exc}") from exc
    model_type = str(cfg.get("model_type", "")) if isinstance(cfg, dict) else ""
    if model_type not in SUPPORTED:
        raise UnsupportedCheckpoint(f"model_type {model_type!r} is not one of {sorted(SUPPORTED)}")
    return model_type


def _fit_aspect(img: Image.Image) -> Image.Image:
    """Pad a sliver-shaped crop so the processor accepts it (it raises over 200:1)."""
    w, h = img.size
    if max(w, h) / max(1, min(w, h)) <= MAX_ASPECT:
        return img
    nw, nh = (w, max(h, int(w / MAX_ASPECT) + 1)) if w > h else (max(w, int(h / MAX_ASPECT) + 1), h)
    canvas = Image.new("RGB", (nw, nh))
    canvas.paste(img, (0, 0))
    return canvas


class QwenVL:
    """A loaded Qwen-VL model + processor. Not thread-safe: call from the device thread."""

    def __init__(self, model: Any, processor: Any, device: str, model_type: str, *,
                 feature_cache_items: int = 16, image_kwargs: dict | None = None) -> None:
        self.model, self.processor, self.device, self.model_type = model, processor, device, model_type
        self.tokenizer = processor.tokenizer
        self.tokenizer.padding_side = "left"
        self.image_token = getattr(processor, "image_token", "<|image_pad|>")
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(self.image_token)
        self.image_kwargs = image_kwargs or {}
        self._features: BoundedLRU[Hashable, VisionFeatures] = BoundedLRU(feature_cache_items)
        self.encoded_regions = 0
        gc = model.generation_config
        eos = gc.eos_token_id if gc.eos_token_id is not None else self.tokenizer.eos_token_id
        self.stop_ids = {int(t) for t in (eos if isinstance(eos, (list, tuple)) else [eos]) if t is not None}
        self.pad_id = gc.pad_token_id if gc.pad_token_id is not None else self.tokenizer.pad_token_id
        if self.pad_id is not None:
            self.stop_ids.add(int(self.pad_id))

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", options: dict | None = None, *,
             feature_cache_items: int = 16) -> QwenVL:
        import transformers
        from transformers import AutoProcessor
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # progress bars would break the one-JSON-object-per-line logs

        options = dict(options or {})
        path = Path(path)
        model_type = read_model_type(path)
        model_cls = getattr(transformers, SUPPORTED[model_type])
        dtype = select_dtype(str(options.get("dtype", "auto")), device)
        model = model_cls.from_pretrained(path, dtype=dtype, attn_implementation=options.get("attn", "sdpa"))
        model = model.to(device).eval()
        processor = AutoProcessor.from_pretrained(path)
        image_kwargs = {}
        if options.get("min_pixels") or options.get("max_pixels"):
            size = dict(getattr(processor.image_processor, "size", {}) or {})
            if options.get("min_pixels"):
                size["shortest_edge"] = int(options["min_pixels"])
            if options.get("max_pixels"):
                size["longest_edge"] = int(options["max_pixels"])
            image_kwargs["size"] = size
        return cls(model, processor, device, model_type, feature_cache_items=feature_cache_items,
                   image_kwargs=image_kwargs)

    # --- vision ---------------------------------------------------------------

    @torch.inference_mode()
    def _encode_batch(self, images: Sequence[Image.Image]) -> list[VisionFeatures]:
        batch = self.processor.image_processor(images=[_fit_aspect(im) for im in images], return_tensors="pt",
                                               **self.image_kwargs)
        grid = batch["image_grid_thw"].to(self.device)
        out = self.model.get_image_features(batch["pixel_values"].to(self.device), grid, return_dict=True)
        deep = getattr(out, "deepstack_features", None)
        feats = []
        for i, pooled in enumerate(out.pooler_output):
            stack = tuple(layer[i] for layer in deep) if deep else None
            feats.append(VisionFeatures(grid[i], pooled, stack, type(out)))
        self.encoded_regions += len(images)
        return feats

    def encode(self, regions: Sequence[tuple[Hashable, Image.Image]]) -> tuple[list[VisionFeatures], int]:
        """Features per (cache key, image); returns (features, how many were cached)."""
        found: dict[int, VisionFeatures] = {}
        todo: list[int] = []
        for i, (key, _img) in enumerate(regions):
            hit = self._features.get(key)
            if hit is not None:
                found[i] = hit
            else:
                todo.append(i)
        # Duplicate regions inside one request are encoded once.
        first: dict[Hashable, int] = {}
        unique = [i for i in todo if first.setdefault(regions[i][0], i) == i]
        if unique:
            fresh = self._encode_batch([regions[i][1] for i in unique])
            for i, feat in zip(unique, fresh):
                found[i] = feat
                self._features.put(regions[i][0], feat)
        for i in todo:
            found.setdefault(i, found[first[regions[i][0]]])
        return [found[i] for i in range(len(regions))], len(regions) - len(unique)

    # --- text -----------------------------------------------------------------

    def chat_text(self, prompt: str, with_image: bool) -> str:
        content: list[dict] = [{"type": "image"}] if with_image else []
        content.append({"type": "text", "text": prompt})
        return self.processor.apply_chat_template([{"role": "user", "content": content}],
                                                  add_generation_prompt=True, tokenize=False)

    def _generation_config(self, gen: GenSettings) -> Any:
        gc = copy.deepcopy(self.model.generation_config)
        gc.max_new_tokens = gen.max_new_tokens
        gc.max_length = None
        gc.do_sample = gen.do_sample
        gc.num_beams = 1
        gc.num_return_sequences = 1
        if self.pad_id is not None:
            gc.pad_token_id = self.pad_id
        if gen.do_sample:
            gc.temperature = gen.temperature if gen.temperature is not None else (gc.temperature or 1.0)
            gc.top_p = gen.top_p if gen.top_p is not None else (gc.top_p or 1.0)
        else:
            gc.temperature = gc.top_p = gc.top_k = None
        return gc

    @torch.inference_mode()
    def generate(self, items: Sequence[tuple[str, VisionFeatures | None]], gen: GenSettings) -> list[Generated]:
        """One batched generate over (prompt, features-or-None) items, left-padded."""
        if not items:
            return []
        texts, feats = [], []
        for prompt, feat in items:
            text = self.chat_text(prompt, feat is not None)
            if feat is not None:
                # What the processor does with pixels, done from the cached grid:
                # one placeholder per merged image token.
                text = text.replace(self.image_token, self.image_token * feat.n_tokens, 1)
                feats.append(feat)
            texts.append(text)
        enc = self.tokenizer(texts, return_tensors="pt", padding=True)
        input_ids = enc["input_ids"].to(self.device)
        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": enc["attention_mask"].to(self.device)}
        if feats:
            kwargs["mm_token_type_ids"] = (input_ids == self.image_token_id).long()
            kwargs["image_grid_thw"] = torch.stack([f.grid_thw for f in feats])
            out_kw: dict[str, Any] = {"pooler_output": tuple(f.pooled for f in feats)}
            if feats[0].deepstack is not None:
                out_kw["deepstack_features"] = [tuple(f.deepstack[k] for f in feats)  # type: ignore[index]  # one architecture: all or none
                                                for k in range(len(feats[0].deepstack))]
            kwargs["mm_encoder_outputs"] = {"image": feats[0].out_cls(**out_kw)}
        if gen.do_sample:
            torch.manual_seed(gen.seed)
        out = self.model.generate(**kwargs, generation_config=self._generation_config(gen))
        results = []
        for row in out[:, input_ids.shape[1]:].tolist():
            n = next((k for k, tok in enumerate(row) if tok in self.stop_ids), len(row))
            text = self.tokenizer.decode(row[:n], skip_special_tokens=True)
            results.append(Generated(text, n, n >= gen.max_new_tokens))
        return results
