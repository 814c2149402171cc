"""Model backends of the SAM3 service (one module per family)."""
