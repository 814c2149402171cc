"""transformers `Sam3Model` / `Sam3Processor` loaded from a local directory.

The tiny fixture and a real checkpoint directory take the same path. The
model's own API splits the work the way the image-first order needs:
`get_vision_features(pixel_values)` once per image (or window),
`get_text_features(input_ids)` once per prompt text, and
`forward(vision_embeds=..., text_embeds=..., attention_mask=...)` per prompt
batch, which runs only the prompt-dependent heads (geometry encoder, DETR
encoder/decoder, mask decoder). Several prompts against one image are one
forward with the vision features expanded (views, no copies) along the batch.

Position encodings of the FPN levels depend only on the feature shape, so
they are kept once per shape instead of in every cached embedding (half the
memory of an entry).

All methods run on the service's single device thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tator_core.geometry import XYXY, clip_box, is_valid_box

#: Sam3Processor pads text to this many tokens and the text encoder has no more positions.
TEXT_TOKENS = 32
#: Exemplar-box label the model treats as padding (`input_boxes_labels == -10`).
BOX_PAD = -10
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class VisionEmbedding:
    """FPN features of one context image (batch of one)."""

    levels: tuple[torch.Tensor, ...]
    shape_key: tuple[tuple[int, ...], ...]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.levels)


@dataclass
class TextEmbedding:
    """Projected token features of one prompt text and its attention mask."""

    features: torch.Tensor  # (1, TEXT_TOKENS, hidden)
    mask: torch.Tensor  # (1, TEXT_TOKENS)
    truncated: bool


@dataclass
class ExemplarBoxes:
    """Exemplar boxes of one decode, in the context's pixels."""

    positives: list[XYXY]
    negatives: list[XYXY]


@dataclass
class RawDetection:
    """One query above threshold, in the context's pixels; mask probabilities kept low-res."""

    box: XYXY
    score: float
    mask_probs: torch.Tensor | None  # (h, w) fp16 on CPU, sigmoid of the mask logits; None unless asked for


class Sam3Backend:
    def __init__(self, model: torch.nn.Module, processor: Any, device: str, dtype: torch.dtype) -> None:
        # Any: the Sam3Model methods used here are outside torch.nn.Module's type.
        self.model: Any = model
        self.processor = processor
        self.device = torch.device(device)
        self.dtype = dtype
        self._pos: dict[tuple[tuple[int, ...], ...], tuple[torch.Tensor, ...]] = {}

    @classmethod
    def load(cls, path: Path, device: str, options: dict | None = None) -> Sam3Backend:
        from transformers import AutoModel, AutoProcessor

        options = options or {}
        dtype_name = str(options.get("dtype", "float32"))
        if dtype_name not in DTYPES:
            raise ValueError(f"options.dtype must be one of {sorted(DTYPES)}, not {dtype_name!r}")
        dtype = DTYPES[dtype_name]
        model = AutoModel.from_pretrained(str(path), dtype=dtype, local_files_only=True)
        if type(model).__name__ != "Sam3Model":
            raise ValueError(f"{path} holds a {type(model).__name__}, not a Sam3Model")
        processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
        return cls(model.to(device).eval(), processor, device, dtype)

    # --- embeddings -----------------------------------------------------------------

    @torch.inference_mode()
    def embed_image(self, pixels: np.ndarray) -> VisionEmbedding:
        """HxWx3 uint8 pixels (the full image or a window crop) -> FPN features."""
        # A writable copy: the image store's pixels are read-only and torch.from_numpy warns on those.
        inputs = self.processor.image_processor(images=np.array(pixels), return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(self.device, self.dtype)
        out = self.model.get_vision_features(pixel_values=pixel_values)
        levels = tuple(out.fpn_hidden_states)
        key = tuple(tuple(t.shape[1:]) for t in levels)
        if key not in self._pos:
            self._pos[key] = tuple(out.fpn_position_encoding)
        return VisionEmbedding(levels, key)

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> list[TextEmbedding]:
        tok = self.processor.tokenizer
        full_lengths = [len(ids) for ids in tok(list(texts))["input_ids"]]
        enc = tok(list(texts), padding="max_length", truncation=True, max_length=TEXT_TOKENS, return_tensors="pt")
        ids = enc["input_ids"].to(self.device)
        mask = enc["attention_mask"].to(self.device)
        feats = self.model.get_text_features(input_ids=ids, attention_mask=mask).pooler_output
        # clone: a cached slice would otherwise keep its whole batch alive
        return [TextEmbedding(feats[i:i + 1].clone(), mask[i:i + 1].clone(), full_lengths[i] > TEXT_TOKENS)
                for i in range(len(texts))]

    # --- decoding -------------------------------------------------------------------

    @torch.inference_mode()
    def decode(self, vision: VisionEmbedding, texts: Sequence[TextEmbedding], size: tuple[int, int], *,
               score_threshold: float, max_results: int = 0, with_masks: bool = False,
               exemplars: Sequence[ExemplarBoxes] | None = None) -> list[list[RawDetection]]:
        """One batch of prompts against one context; detections per prompt, best first.

        size is the context's (width, height): boxes come back in its pixels,
        clipped to it. exemplars, when given, has one entry per text. Mask
        probabilities are kept (low-res) only with_masks: a real model's 200
        queries x 288^2 floats per prompt would otherwise pile up until the merge.
        """
        from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

        n = len(texts)
        if n == 0:
            return []
        embeds = Sam3VisionEncoderOutput(
            fpn_hidden_states=tuple(t.expand(n, *t.shape[1:]) for t in vision.levels),
            fpn_position_encoding=tuple(t.expand(n, *t.shape[1:]) for t in self._pos[vision.shape_key]))
        text_out = _TextOut(torch.cat([t.features for t in texts]))
        kwargs = {}
        if exemplars is not None:
            kwargs["input_boxes"], kwargs["input_boxes_labels"] = self._box_tensors(exemplars, size)
        out = self.model(vision_embeds=embeds, text_embeds=text_out,
                         attention_mask=torch.cat([t.mask for t in texts]), **kwargs)
        scores = out.pred_logits.float().sigmoid()
        if out.presence_logits is not None:
            scores = scores * out.presence_logits.float().sigmoid()
        w, h = size
        scale = torch.tensor([w, h, w, h], dtype=torch.float32, device=scores.device)
        boxes = out.pred_boxes.float() * scale
        boxes = boxes.cpu()
        scores = torch.nan_to_num(scores, nan=0.0).cpu()
        results = []
        for i in range(n):
            row_scores, row_boxes = scores[i].tolist(), boxes[i].tolist()
            kept: list[tuple[int, XYXY, float]] = []
            for q in torch.argsort(scores[i], descending=True).tolist():
                score = row_scores[q]
                if score < score_threshold or (max_results and len(kept) >= max_results):
                    break
                box = clip_box(tuple(row_boxes[q]), w, h)
                if is_valid_box(box):
                    kept.append((q, box, min(1.0, score)))
            probs = None
            if with_masks and kept:
                # One transfer per prompt; fp16 halves what waits for the merge.
                probs = out.pred_masks[i, [q for q, _, _ in kept]].float().sigmoid().half().cpu()
            # clone: a row of `probs` would keep the whole prompt's masks alive after the call drops the rest
            results.append([RawDetection(box, score, probs[k].clone() if probs is not None else None)
                            for k, (_, box, score) in enumerate(kept)])
        return results

    def _box_tensors(self, exemplars: Sequence[ExemplarBoxes], size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel xyxy -> normalised cxcywh, padded with the model's pad label (what the processor does)."""
        w, h = size
        rows = [[(b, 1) for b in ex.positives] + [(b, 0) for b in ex.negatives] for ex in exemplars]
        width = max(len(r) for r in rows)
        boxes = torch.zeros(len(rows), width, 4)
        labels = torch.full((len(rows), width), BOX_PAD, dtype=torch.long)
        for i, row in enumerate(rows):
            for j, (b, lab) in enumerate(row):
                boxes[i, j] = torch.tensor([(b[0] + b[2]) / 2 / w, (b[1] + b[3]) / 2 / h,
                                            (b[2] - b[0]) / w, (b[3] - b[1]) / h])
                labels[i, j] = lab
        return boxes.to(self.device, self.dtype), labels.to(self.device)

    @staticmethod
    def mask(det: RawDetection, size: tuple[int, int], mask_threshold: float) -> np.ndarray:
        """The detection's binary mask at the context's size (HF's post-processing order)."""
        w, h = size
        assert det.mask_probs is not None
        up = torch.nn.functional.interpolate(det.mask_probs.float()[None, None], size=(h, w), mode="bilinear",
                                             align_corners=False)[0, 0]
        return (up > mask_threshold).numpy()


class _TextOut:
    """What `Sam3Model.forward(text_embeds=...)` reads: the projected features as `.pooler_output`."""

    def __init__(self, pooler_output: torch.Tensor) -> None:
        self.pooler_output = pooler_output
