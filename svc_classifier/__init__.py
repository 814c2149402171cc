"""Classifier service: CLIP / DINOv3 crop embeddings and trained heads.

Layers (KServe-like): `server.py` (proto in, proto out) -> plain functions
(`classify.py`, `training.py`, `crops.py`, `embedding.py`, `heads.py`,
`datasets.py`) on Python types -> model backends (`backends/clip.py`,
`backends/dinov3.py`). `runtime.py` holds the loaded models and the one
device thread.
"""
