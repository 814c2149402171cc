"""Tiny seeded random-init SAM3 for tests, the demo stack and benchmarks.

Written with `save_pretrained` next to a local CLIP byte-level BPE tokenizer,
so the service loads it through exactly the path a real checkpoint directory
takes (`AutoModel` / `AutoProcessor.from_pretrained(local_dir)`); no hub, no
download. Gotchas: sub-configs need `model_type`; the processor pads text to 32
tokens; merges are tuples.

The random weights only exercise the plumbing: detections are as good as noise.
"""

from __future__ import annotations

import json
from pathlib import Path

MODEL_ID = "sam3-tiny"
#: Stamp file: a directory holding it with the same config is reused as is.
STAMP = "tator_tiny.json"
HIDDEN = 32
IMAGE_SIZE = 224
MASK_SIZE = 64
NUM_QUERIES = 20
TEXT_LEN = 32  # Sam3Processor always pads text to 32 tokens

#: Words that get whole-word merges: the synthetic world's labels and glossary,
#: plus the processor's default exemplar text "visual". Any other text still
#: tokenizes (byte-level, character by character).
WORDS = (
    "circle", "square", "triangle", "disc", "round", "shape", "ring", "dot", "orb",
    "box", "block", "tile", "quadrilateral", "wedge", "three", "sided", "delta",
    "pyramid", "visual", "object", "red", "green", "blue",
)


def _apply_bpe(pieces: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Standard BPE: repeatedly merge the adjacent pair of lowest rank."""
    while len(pieces) > 1:
        pairs = [(ranks.get((a, b), len(ranks)), k) for k, (a, b) in enumerate(zip(pieces, pieces[1:]))]
        rank, k = min(pairs)
        if rank == len(ranks):
            break
        pieces = pieces[:k] + [pieces[k] + pieces[k + 1]] + pieces[k + 2:]
    return pieces


def word_merges(words: tuple[str, ...]) -> list[tuple[str, str]]:
    """Merges that fold each word into one `word</w>` token.

    Each word is tokenised with the merges so far and gets new merges (lowest
    priority) until it is one token. Appending never changes how an earlier
    word merges: a lower-ranked rule applies at every step of its merging.
    """
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        while len(pieces := _apply_bpe(list(word[:-1]) + [word[-1] + "</w>"], ranks)) > 1:
            pair = (pieces[0], pieces[1])
            ranks[pair] = len(merges)
            merges.append(pair)
    return merges


def build_tokenizer():
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    merges = word_merges(WORDS)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=TEXT_LEN)


def _config(tok) -> dict:
    h = HIDDEN
    small = dict(hidden_size=h, num_attention_heads=2, intermediate_size=64)
    return dict(
        vision_config=dict(
            backbone_config=dict(model_type="sam3_vit_model", hidden_size=h, intermediate_size=64,
                                 num_hidden_layers=2, num_attention_heads=2, image_size=IMAGE_SIZE, patch_size=14,
                                 pretrain_image_size=112, window_size=8, global_attn_indexes=[1]),
            fpn_hidden_size=h, backbone_feature_sizes=[[64, 64], [32, 32], [16, 16]]),
        text_config=dict(model_type="clip_text_model", vocab_size=len(tok), hidden_size=h, intermediate_size=64,
                         projection_dim=h, num_hidden_layers=1, num_attention_heads=2,
                         max_position_embeddings=TEXT_LEN, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        geometry_encoder_config=dict(num_layers=1, **small),
        detr_encoder_config=dict(num_layers=1, **small),
        detr_decoder_config=dict(num_layers=1, num_queries=NUM_QUERIES, **small),
        mask_decoder_config=dict(hidden_size=h, num_attention_heads=2),
    )


def build(models_dir: Path, *, seed: int = 0, **_kw: object) -> list[dict]:
    """Write the tiny model under models_dir/sam3-tiny; return its registry entry."""
    import torch
    from transformers import Sam3Config, Sam3ImageProcessor, Sam3Model, Sam3Processor

    out = Path(models_dir) / MODEL_ID
    entry = {"id": MODEL_ID, "family": "sam3", "path": MODEL_ID, "default": True, "options": {}}
    tok = build_tokenizer()
    cfg = _config(tok)
    stamp = {"seed": seed, "config": cfg, "merges": word_merges(WORDS), "image_size": IMAGE_SIZE,
             "mask_size": MASK_SIZE}
    stamp_path = out / STAMP
    if stamp_path.is_file() and (out / "model.safetensors").is_file():
        try:
            if json.loads(stamp_path.read_text()) == json.loads(json.dumps(stamp)):
                return [entry]
        except ValueError:
            pass  # a torn stamp: rebuild
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam3Model(Sam3Config(**cfg)).eval()
    proc = Sam3Processor(
        image_processor=Sam3ImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
                                           mask_size={"height": MASK_SIZE, "width": MASK_SIZE}),
        tokenizer=tok)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    proc.save_pretrained(out)
    # Written last: a build interrupted before this point is redone next time.
    stamp_path.write_text(json.dumps(stamp, sort_keys=True, indent=1))
    return [entry]
