"""Tiny seeded random-init Qwen-VL checkpoints for tests, benchmarks and the local stack.

The recipe: a byte-level Qwen2 tokenizer built in
memory with the chat special tokens and a chat template, a Qwen2.5-VL (default)
or Qwen3-VL config of a few hundred thousand parameters, saved with
`save_pretrained` so the service loads it through the same `from_pretrained`
path as a real checkpoint. Its text is random bytes: tests assert structure,
limits and determinism, never wording.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

RECIPE_VERSION = 1
STAMP = "tator_tiny.json"
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
           "<|image_pad|>", "<|video_pad|>"]
TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for c in message['content'] %}{% if c['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif c['type'] == 'video' %}"
    "<|vision_start|><|video_pad|><|vision_end|>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
ARCHS = ("qwen2_5_vl", "qwen3_vl")


def _tokenizer():
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode  # the GPT-2 byte<->unicode table

    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    for s in SPECIAL:
        vocab.setdefault(s, len(vocab))
    tok = Qwen2Tokenizer(vocab=vocab, merges=[], unk_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": SPECIAL[1:]})
    tok.chat_template = TEMPLATE
    return tok


def _model_and_processor(arch: str):
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    tok = _tokenizer()
    ids = {s: tok.convert_tokens_to_ids(s) for s in SPECIAL}
    text = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])
    tokens = dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                  vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    if arch == "qwen2_5_vl":
        patch = 14
        cfg = Qwen2_5_VLConfig(
            vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=patch,
                               spatial_merge_size=2, temporal_patch_size=2, window_size=112, out_hidden_size=64,
                               fullatt_block_indexes=[1]),
            text_config=dict(text, rope_parameters={"rope_type": "default", "rope_theta": 1e4,
                                                    "mrope_section": [2, 3, 3]}),  # sums to head_dim/2 = 8
            **tokens)
        model = Qwen2_5_VLForConditionalGeneration(cfg)
        proc_cls, video_cls = Qwen2_5_VLProcessor, Qwen2VLVideoProcessor
    else:
        patch = 16
        cfg = Qwen3VLConfig(
            vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=patch,
                               spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=64,
                               num_position_embeddings=64, deepstack_visual_indexes=[0, 1]),
            text_config=dict(text, head_dim=16, rope_parameters={"rope_type": "default", "rope_theta": 5e6,
                                                                 "mrope_section": [4, 2, 2],
                                                                 "mrope_interleaved": True}),
            **tokens)
        model = Qwen3VLForConditionalGeneration(cfg)
        proc_cls, video_cls = Qwen3VLProcessor, Qwen3VLVideoProcessor
    model.eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.bos_token_id = ids["<|endoftext|>"]
    # Small pixel limits: a 640x480 image becomes a few dozen image tokens.
    kw = dict(size={"shortest_edge": (2 * patch) ** 2 * 4, "longest_edge": (2 * patch) ** 2 * 64},
              patch_size=patch, merge_size=2, temporal_patch_size=2)
    proc = proc_cls(image_processor=Qwen2VLImageProcessor(**kw), tokenizer=tok, video_processor=video_cls(**kw),
                    chat_template=TEMPLATE)
    return model, proc


def build(models_dir: Path, *, seed: int = 0, arch: str = "qwen2_5_vl", model_id: str | None = None,
          **_: object) -> list[dict]:
    """Write the tiny model under models_dir/<id>/ (skipped when already built the same way)."""
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, not {arch!r}")
    model_id = model_id or ("qwen-tiny" if arch == "qwen2_5_vl" else "qwen3-tiny")
    out = Path(models_dir) / model_id
    stamp = {"recipe": RECIPE_VERSION, "seed": seed, "arch": arch}
    entry = {"id": model_id, "family": "qwen", "path": model_id, "default": arch == "qwen2_5_vl", "options": {}}
    try:
        if json.loads((out / STAMP).read_text()) == stamp and (out / "model.safetensors").exists():
            return [entry]
    except (OSError, ValueError):
        pass
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, proc = _model_and_processor(arch)
    tmp = out.with_name(f".{model_id}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    proc.save_pretrained(tmp)
    (tmp / STAMP).write_text(json.dumps(stamp, sort_keys=True))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return [entry]


if __name__ == "__main__":  # python -m svc_qwen.tiny DIR [arch]
    import sys

    print(json.dumps(build(Path(sys.argv[1]), arch=sys.argv[2] if len(sys.argv) > 2 else "qwen2_5_vl")))
