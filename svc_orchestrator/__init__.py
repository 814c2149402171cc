"""Orchestrator: the flows (prepass, prepass jobs, calibration jobs) and the state (datasets,
glossary library, recipes, prepass cache, jobs). It composes the model services only through the
typed gRPC clients in `clients.py`; it never imports a model service."""
