"""Pipeline version: bump when a change alters prepass or calibration output
for the same inputs, so cached results from the old code are not reused.

A change of a stored message's schema needs no bump: `schema_fingerprint` of
that message is part of the cache key, so bytes written under another schema
(a field renumbered, a string turned into an enum) are never parsed as if they
were current; such bytes parse without error and silently lose the field."""

from __future__ import annotations

import hashlib
from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor

PIPELINE_VERSION = "1"


def schema_fingerprint(root: Any) -> str:
    """SHA-256 over the descriptors of `root` (a message class's DESCRIPTOR) and of every message and enum
    its fields reach (options included, comments not: a comment-only edit keeps the fingerprint). `root` is
    typed Any because the generated stubs type DESCRIPTOR as the pure-Python or the upb descriptor class."""
    parts: dict[str, bytes] = {}
    todo: list[Descriptor | EnumDescriptor] = [root]
    while todo:
        desc = todo.pop()
        if desc.full_name in parts:
            continue
        if isinstance(desc, EnumDescriptor):
            enum_proto = descriptor_pb2.EnumDescriptorProto()
            desc.CopyToProto(enum_proto)
            parts[desc.full_name] = enum_proto.SerializeToString(deterministic=True)
            continue
        msg_proto = descriptor_pb2.DescriptorProto()
        desc.CopyToProto(msg_proto)
        parts[desc.full_name] = msg_proto.SerializeToString(deterministic=True)
        for field in desc.fields:
            if field.message_type is not None:
                todo.append(field.message_type)
            if field.enum_type is not None:
                todo.append(field.enum_type)
    digest = hashlib.sha256()
    for name in sorted(parts):
        digest.update(name.encode() + b"\0" + parts[name] + b"\0")
    return digest.hexdigest()
