"""SAM3 service: text-prompted and exemplar ("similarity") segmentation.

Layers: `server.py` (gRPC transport) -> `segment.py` / `windows.py` /
`cache.py` / `models.py` (plain functions and state on Python types) ->
`backends/sam3.py` (transformers Sam3Model / Sam3Processor from a local
directory). `tiny.py` writes the seeded random-init fixture model.
"""
