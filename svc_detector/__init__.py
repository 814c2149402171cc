"""Detector service: YOLO (ultralytics) and RF-DETR (rfdetr) behind one gRPC API.

Layers: `server.py` (proto in, proto out) -> `detect.py` / `params.py` (the
logic on Python types) -> `models.py` (registry, load/unload, micro-batched
device work) -> `backends/<family>.py` (one module per model family).
"""
