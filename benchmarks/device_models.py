"""Random-weight checkpoints at two sizes, written in the registry's formats.

`real` is each model family at its published size and native input: YOLOv8s at 640,
RF-DETR Base at 560, SAM3 at the transformers default (published) configuration,
Qwen2.5-VL-3B's configuration in bf16, CLIP ViT-B/16 at 224. Speed does not depend
on the weights' values, so random weights measure what trained ones would.
`tiny` is the same builders with small shapes: the device check's CPU dry run, so
both sizes go through one code path (build -> registry -> service -> load client).

Tokenizers are the tiny byte-level ones of the services' own tiny builders (a
real vocabulary needs a download); Qwen's is padded to the real vocabulary size
with byte-level filler tokens, so the embedding and LM head have their real
shapes and every generated id decodes.
"""

from __future__ import annotations

import contextlib
import io
import itertools
from pathlib import Path
from typing import Any

import yaml

FAMILIES = ("yolo", "rfdetr", "sam3", "qwen", "clip")
LABELS = ["circle", "square", "triangle"]

# Qwen2.5-VL-3B-Instruct's config.json (text and vision towers).
QWEN_3B = {
    "text": dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
                 num_key_value_heads=2, max_position_embeddings=128000, tie_word_embeddings=True,
                 rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]}),
    "vision": dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048,
                   patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                   fullatt_block_indexes=[7, 15, 23, 31], hidden_act="silu"),
    "vocab_size": 151936,
}
QWEN_TINY = {
    "text": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=2048,
                 rope_parameters={"rope_type": "default", "rope_theta": 1e4, "mrope_section": [2, 3, 3]}),
    "vision": dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64, patch_size=14,
                   spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[1]),
    "vocab_size": 0,  # the tokenizer's own size
}
CLIP_B16 = {"vision": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=224, patch_size=16),
            "text": dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8,
                         max_position_embeddings=77, vocab_size=49408),
            "projection_dim": 512}
CLIP_TINY = {"vision": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                            image_size=64, patch_size=16),
             "text": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                          max_position_embeddings=32, vocab_size=0),
             "projection_dim": 32}

SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "real": {
        "yolo": {"cfg": "yolov8s.yaml", "imgsz": 640},
        # positional_encoding_size 40 = 560 / 14: native resolution without the DINOv2 hub download that
        # rfdetr starts for its default 37 (518 px) grid; the forward costs the same.
        "rfdetr": {"variant": "base", "cls": "RFDETRBase", "resolution": 560, "positional_encoding_size": 40},
        "sam3": {"config": None, "dtype": "bfloat16"},  # None: transformers' Sam3Config() defaults
        "qwen": {"config": QWEN_3B, "dtype": "bfloat16", "new_tokens": 32},
        "clip": {"config": CLIP_B16},
    },
    "tiny": {
        "yolo": {"cfg": "yolov8n.yaml", "imgsz": 160},
        "rfdetr": {"variant": "nano", "cls": "RFDETRNano", "resolution": 192},
        "sam3": {"config": "tiny", "dtype": "float32"},
        "qwen": {"config": QWEN_TINY, "dtype": "float32", "new_tokens": 4},
        "clip": {"config": CLIP_TINY},
    },
}


@contextlib.contextmanager
def _init_on(device: str):
    """Build modules directly on the target device (a 3B model initialised on a CPU takes minutes). They are
    built in float32, as their init code expects, and cast afterwards."""
    import torch

    with torch.device(device):
        yield


def _dtype(name: str, device: str) -> Any:
    import torch

    if name == "bfloat16" and not device.startswith("cuda"):
        return torch.float32  # bf16 matmuls on a CPU are slow and not what a GPU run measures
    return getattr(torch, name)


def build_yolo(out: Path, spec: dict, device: str) -> dict:
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    with contextlib.redirect_stdout(io.StringIO()):
        model = YOLO(spec["cfg"], task="detect")
        # The head sized for the synthetic world's labels, so the prepass's labelmap check passes.
        model.model = DetectionModel(spec["cfg"], nc=len(LABELS), verbose=False)
    model.model.names = dict(enumerate(LABELS))
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out / "model.pt"))
    return {"family": "yolo", "path": "model.pt", "labelmap": list(LABELS), "options": {"imgsz": spec["imgsz"]}}


def build_rfdetr(out: Path, spec: dict, device: str) -> dict:
    import rfdetr
    import torch

    extra = {k: spec[k] for k in ("resolution", "positional_encoding_size") if k in spec}
    model = getattr(rfdetr, spec["cls"])(pretrain_weights=None, num_classes=len(LABELS), device="cpu", **extra)
    args = model.model_config.model_dump(mode="json")
    args.update(class_names=list(LABELS), pretrain_weights=None, device="cpu")
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.model.model.state_dict(), "args": args, "model_name": spec["cls"]},
               out / "model.pth")
    return {"family": "rfdetr", "path": "model.pth", "labelmap": list(LABELS),
            "options": {"variant": spec["variant"], "num_classes": len(LABELS), **extra}}


def build_sam3(out: Path, spec: dict, device: str) -> dict:
    from transformers import Sam3Config, Sam3ImageProcessor, Sam3Model, Sam3Processor

    from svc_sam3 import tiny

    tok = tiny.build_tokenizer()
    if spec["config"] == "tiny":
        cfg = Sam3Config(**tiny._config(tok))
        image = Sam3ImageProcessor(size={"height": tiny.IMAGE_SIZE, "width": tiny.IMAGE_SIZE},
                                   mask_size={"height": tiny.MASK_SIZE, "width": tiny.MASK_SIZE})
    else:
        cfg, image = Sam3Config(), Sam3ImageProcessor()
    with _init_on(device):
        model = Sam3Model(cfg).eval().to(_dtype(spec["dtype"], device))
    model.save_pretrained(out)
    Sam3Processor(image_processor=image, tokenizer=tok).save_pretrained(out)
    return {"family": "sam3", "path": ".", "options": {"dtype": spec["dtype"]}}


def _filler_tokens(alphabet: list[str], count: int):
    """Distinct strings of byte-level characters, shortest first: every one decodes to bytes."""
    made = 0
    for length in itertools.count(2):
        for combo in itertools.product(alphabet, repeat=length):
            if made == count:
                return
            made += 1
            yield "".join(combo)


def qwen_tokenizer(vocab_size: int):
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    from svc_qwen import tiny

    alphabet = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(alphabet)}
    for s in tiny.SPECIAL:
        vocab.setdefault(s, len(vocab))
    for filler in _filler_tokens(alphabet, max(0, vocab_size - len(vocab))):
        vocab[filler] = len(vocab)
    tok = Qwen2Tokenizer(vocab=vocab, merges=[], unk_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": tiny.SPECIAL[1:]})
    tok.chat_template = tiny.TEMPLATE
    return tok


def build_qwen(out: Path, spec: dict, device: str) -> dict:
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    conf = spec["config"]
    tok = qwen_tokenizer(conf["vocab_size"])
    ids = {s: tok.convert_tokens_to_ids(s) for s in ("<|endoftext|>", "<|im_end|>", "<|image_pad|>",
                                                       "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")}
    cfg = Qwen2_5_VLConfig(
        vision_config=dict(conf["vision"]),
        text_config=dict(conf["text"], vocab_size=len(tok), bos_token_id=ids["<|endoftext|>"],
                         eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    with _init_on(device):
        model = Qwen2_5_VLForConditionalGeneration(cfg).eval().to(_dtype(spec["dtype"], device))
    # A fixed number of generated tokens: the end-of-text id is the last filler token, which random weights
    # (almost) never pick, so every call generates max_new_tokens.
    model.generation_config.eos_token_id = len(tok) - 1
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    patch = conf["vision"]["patch_size"]
    kw = dict(patch_size=patch, merge_size=2, temporal_patch_size=2)
    proc = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(**kw), tokenizer=tok,
                               video_processor=Qwen2VLVideoProcessor(**kw), chat_template=tok.chat_template)
    model.save_pretrained(out)
    proc.save_pretrained(out)
    return {"family": "qwen", "path": ".", "options": {"dtype": spec["dtype"]},
            "new_tokens": spec["new_tokens"]}


def build_clip(out: Path, spec: dict, device: str) -> dict:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from svc_classifier import tiny

    conf = spec["config"]
    tok = tiny._tokenizer()
    text = dict(conf["text"], vocab_size=max(conf["text"]["vocab_size"], len(tok)), bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    cfg = CLIPConfig(text_config=text, vision_config=dict(conf["vision"]), projection_dim=conf["projection_dim"])
    with _init_on(device):
        model = CLIPModel(cfg).eval()
    side = conf["vision"]["image_size"]
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(
        size={"shortest_edge": side}, crop_size={"height": side, "width": side}), tokenizer=tok)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return {"family": "clip", "path": ".", "options": {"pooling": "cls_grid"}}


BUILDERS = {"yolo": build_yolo, "rfdetr": build_rfdetr, "sam3": build_sam3, "qwen": build_qwen, "clip": build_clip}


def build_registry(models_dir: Path, size: str, device: str = "cpu", families: tuple[str, ...] = FAMILIES,
                   seed: int = 0) -> tuple[Path, dict[str, dict]]:
    """Write one model per family under models_dir and the registry.yaml naming them (one default each)."""
    import torch

    torch.manual_seed(seed)
    entries, extra = [], {}
    for family in families:
        model_id = f"{family}-{size}"
        info = BUILDERS[family](models_dir / model_id, SIZES[size][family], device)
        path = info.pop("path")
        extra[family] = {"id": model_id, **{k: info.pop(k) for k in ("new_tokens",) if k in info}}
        entries.append({"id": model_id, "path": str(Path(model_id) / path).rstrip("/."), "default": True,
                        **info})
    registry = models_dir / "registry.yaml"
    registry.write_text(yaml.safe_dump({"models": entries}, sort_keys=False))
    return registry, extra


def parameter_count(family: str, size: str) -> int:
    """Parameters of a family's model at a size, built on the meta device (no memory, no time)."""
    import torch

    with torch.device("meta"):
        if family == "qwen":
            from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

            conf = SIZES[size]["qwen"]["config"]
            cfg = Qwen2_5_VLConfig(vision_config=dict(conf["vision"]),
                                   text_config=dict(conf["text"], vocab_size=conf["vocab_size"] or 300))
            model = Qwen2_5_VLForConditionalGeneration(cfg)
        elif family == "clip":
            from transformers import CLIPConfig, CLIPModel

            conf = SIZES[size]["clip"]["config"]
            text = dict(conf["text"], vocab_size=conf["text"]["vocab_size"] or 300)
            model = CLIPModel(CLIPConfig(text_config=text, vision_config=dict(conf["vision"]),
                                         projection_dim=conf["projection_dim"]))
        elif family == "sam3":
            from transformers import Sam3Config, Sam3Model

            model = Sam3Model(Sam3Config())
        else:
            raise ValueError(f"{family}: count it from a built model")
    return sum(p.numel() for p in model.parameters())
