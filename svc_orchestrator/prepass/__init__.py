"""The prepass: config resolution and hashing (`config`), model plan (`plan`), SAM3 prompts
(`prompts`), provenance and dedupe (`provenance`), exemplar choice (`exemplars`), the flow over the
model services (`flow`) and what it reads per request or job (`context`), the SQLite cache (`cache`)
and the glue that ties them (`runner`)."""

from svc_orchestrator.prepass.cache import CacheMeta, PrepassCache
from svc_orchestrator.prepass.config import ResolvedConfig, resolve
from svc_orchestrator.prepass.context import PrepassContext
from svc_orchestrator.prepass.runner import PrepassRunner

__all__ = ["CacheMeta", "PrepassCache", "PrepassContext", "PrepassRunner", "ResolvedConfig", "resolve"]
