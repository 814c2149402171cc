"""The prepass: config resolution and hashing (`config`), model plan (`plan`), SAM3 prompts
(`prompts`), provenance and dedupe (`provenance`), exemplar choice (`exemplars`), the flow over the
model services (`flow`), the SQLite cache (`cache`) and the glue that ties them (`runner`)."""

from svc_orchestrator.prepass.cache import CacheMeta, PrepassCache
from svc_orchestrator.prepass.config import ResolvedConfig, resolve
from svc_orchestrator.prepass.runner import PrepassContext, PrepassRunner

__all__ = ["CacheMeta", "PrepassCache", "PrepassContext", "PrepassRunner", "ResolvedConfig", "resolve"]
