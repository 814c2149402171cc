"""Model backends of the Qwen service (one module per model family)."""
