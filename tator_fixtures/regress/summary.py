"""The pinned parts of a regression summary: schema fingerprints, input hashes, pipeline version.

Fingerprints come from the generated descriptors in `tator_core.gen`, which are what the services are
built from: a proto change without a deliberate baseline update shows up as a fingerprint change.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor

from tator_fixtures.fuzz_pack import FuzzPack

#: Service -> generated module holding its descriptor.
SERVICE_MODULES = {
    "detector": "tator_core.gen.tator.detector.v1.detector_pb2",
    "sam3": "tator_core.gen.tator.sam3.v1.sam3_pb2",
    "qwen": "tator_core.gen.tator.qwen.v1.qwen_pb2",
    "classifier": "tator_core.gen.tator.classifier.v1.classifier_pb2",
    "orchestrator": "tator_core.gen.tator.orchestrator.v1.orchestrator_pb2",
}

SUMMARY_SCHEMA = 1


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def canonical_hash(value: Any) -> str:
    """Hash of a JSON value independent of key order."""
    return sha256_text(json.dumps(value, sort_keys=True, separators=(",", ":")))


def _tator_files(fd: FileDescriptor) -> dict[str, FileDescriptor]:
    """The file and its transitive dependencies inside the tator package (buf/google protos are pinned
    libraries, not our schema)."""
    found: dict[str, FileDescriptor] = {}
    stack = [fd]
    while stack:
        current = stack.pop()
        if current.name in found or not current.name.startswith("tator/"):
            continue
        found[current.name] = current
        stack.extend(current.dependencies)
    return found


def fingerprint() -> dict[str, str]:
    """Per service: sha256 over its proto file and the tator protos it imports, serialized deterministically."""
    out = {}
    for service, module_name in SERVICE_MODULES.items():
        digest = hashlib.sha256()
        files = _tator_files(importlib.import_module(module_name).DESCRIPTOR)
        for name in sorted(files):
            proto = descriptor_pb2.FileDescriptorProto()
            files[name].CopyToProto(proto)
            digest.update(name.encode() + b"\0" + proto.SerializeToString(deterministic=True))
        out[service] = digest.hexdigest()
    return out


def pipeline_version() -> str:
    try:
        from tator_core.version import PIPELINE_VERSION
    except ImportError:
        return "0"
    return str(PIPELINE_VERSION)


def input_hashes(pack: FuzzPack) -> dict[str, str]:
    """Hashes of what every step consumes; a change means the baseline no longer describes this input."""
    labelmap_text = (pack.dir / "labelmap.txt").read_text()
    return {
        "glossary": sha256_text(pack.glossary_text),
        "labelmap": sha256_text(labelmap_text),
        "fuzz_pack": pack.manifest_sha256,
    }
