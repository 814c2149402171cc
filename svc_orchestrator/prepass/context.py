"""What stays fixed over the images of one prepass request or job.

The runner builds one context per request or job; the flow reads it for every image, so the
glossary is parsed into terms once here and nothing is copied field by field per image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from svc_orchestrator.datasets import Dataset
from svc_orchestrator.prepass import prompts
from svc_orchestrator.prepass.config import ResolvedConfig
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb


@dataclass
class PrepassContext:
    dataset: Dataset
    labelmap: list[str]
    glossary_text: str
    glossary_hash: str
    config_pb: pb.PrepassConfig
    config: ResolvedConfig
    config_hash: str
    terms: dict[str, list[str]]  # the glossary's terms per label
    # The request fields this context was built from (dataset, config as sent, glossary name, recipe) with no
    # image: a run's replay record adds the image it ran on.
    request: pb.PrepassRequest = field(default_factory=pb.PrepassRequest)

    @property
    def labelmap_hash(self) -> str:
        return self.dataset.labelmap_hash

    @property
    def wants_expansion(self) -> bool:
        """Some label has no glossary terms, so Qwen may be asked for synonyms."""
        return bool(prompts.labels_needing_expansion(self.labelmap, self.terms))
