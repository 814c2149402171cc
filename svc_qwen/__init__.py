"""Qwen-VL service: captions (full frame and windowed) and synonym expansion."""
