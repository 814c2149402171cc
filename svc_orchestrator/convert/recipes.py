"""Recipes <-> their messages (a module of its own: recipes import the prepass config, whose package
reaches the store, which converts jobs here; the package's __init__ stays free of both)."""

from __future__ import annotations

from svc_orchestrator.prepass.config import config_doc, config_from_doc
from svc_orchestrator.recipes import Recipe
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.timestamps import timestamp, unix_seconds


def recipe_pb(r: Recipe) -> pb.Recipe:
    out = pb.Recipe(id=r.id, name=r.name, description=r.description, glossary=r.glossary,
                    schema_version=r.schema_version)
    out.config.CopyFrom(config_from_doc(r.config))
    if r.created_at:
        out.create_time.CopyFrom(timestamp(r.created_at))
    if r.updated_at:
        out.update_time.CopyFrom(timestamp(r.updated_at))
    return out


def recipe_from_pb(msg: pb.Recipe) -> Recipe:
    return Recipe(id=msg.id, name=msg.name, description=msg.description, config=config_doc(msg.config),
                  glossary=msg.glossary, created_at=unix_seconds(msg.create_time) if msg.HasField("create_time") else 0.0,
                  updated_at=unix_seconds(msg.update_time) if msg.HasField("update_time") else 0.0,
                  schema_version=msg.schema_version)
