"""Orchestrator settings: where the model services listen, where state lives, stage deadlines."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from tator_core import limits
from tator_core.settings import ServiceSettings, tator_home

_REPO = Path(__file__).resolve().parent.parent
_FALLBACK = {"detector": "127.0.0.1:50051", "sam3": "127.0.0.1:50052", "qwen": "127.0.0.1:50053",
             "classifier": "127.0.0.1:50054"}


def stack_address(service: str) -> str:
    """Default address of a model service: config/stack.yaml, else the documented port."""
    path = _REPO / "config" / "stack.yaml"
    try:
        import yaml

        doc = yaml.safe_load(path.read_text()) or {}
        return str(doc["services"][service]["address"])
    except (OSError, KeyError, TypeError, ValueError):
        return _FALLBACK[service]


class OrchestratorSettings(ServiceSettings):
    env_prefix: ClassVar[str] = "TATOR_ORCHESTRATOR_"
    service_name: ClassVar[str] = "orchestrator"

    detector_address: str = Field(default_factory=lambda: stack_address("detector"), description="svc_detector")
    sam3_address: str = Field(default_factory=lambda: stack_address("sam3"), description="svc_sam3")
    qwen_address: str = Field(default_factory=lambda: stack_address("qwen"), description="svc_qwen")
    classifier_address: str = Field(default_factory=lambda: stack_address("classifier"),
                                    description="svc_classifier")
    data_root: Path = Field(default_factory=lambda: tator_home() / "data", description="datasets live here")
    state_dir: Path = Field(default_factory=lambda: tator_home() / "state",
                            description="jobs, prepass cache, glossaries, recipes, calibration artifacts")
    detector_timeout_s: float = Field(120.0, gt=0, description="deadline of one Detect call")
    sam3_timeout_s: float = Field(180.0, gt=0, description="deadline of one SAM3 call")
    qwen_timeout_s: float = Field(180.0, gt=0, description="deadline of one Qwen call")
    classifier_timeout_s: float = Field(120.0, gt=0, description="deadline of one classifier call")
    health_timeout_s: float = Field(3.0, gt=0, description="deadline of health/ListModels probes")
    models_ttl_s: float = Field(2.0, ge=0, description="how long a ListModels answer is reused (0 = never)")
    prepass_images_in_flight: int = Field(4, ge=1, le=64, description="images of one prepass job processed at "
                                          "once (stages of different images overlap); 1 = one at a time")
    detector_min_tile: int = Field(limits.TILE_MIN, ge=1, description="svc_detector's smallest tile side; "
                                   "configs below it are refused at the door")
    sam3_max_prompt_runs: int = Field(limits.SAM3_MAX_PROMPT_RUNS, ge=1, description="svc_sam3's max_prompt_runs; "
                                      "grids with more contexts are refused at the door")
    max_concurrent_jobs: int = Field(1, ge=1, le=16, description="jobs running at once; others wait QUEUED")
    store_url: str = Field("", pattern=r"^(|postgres(ql)?://.*|sqlite:///.+)$",
                           description="where jobs, job events and the prepass cache live: empty = "
                                       "<state_dir>/orchestrator.sqlite; postgresql://user@host:port/db = "
                                       "shared by every replica")
    replica_id: str = Field("", max_length=128, description="this replica's name in job and work-unit leases "
                                                             "(empty = the host name; unique per replica)")
    unit_images: int = Field(16, ge=1, le=4096, description="images per work unit of a dataset prepass job "
                                                             "(the share one replica claims at a time)")
    unit_max_attempts: int = Field(3, ge=1, le=100, description="a work unit claimed this many times that never "
                                   "finished (its replicas crashed on it) fails its job, naming its images")
    event_keep: int = Field(32, ge=1, le=100000, description="events (progress per image) kept per job once "
                            "it ended event_retention_s ago; the last is its final state")
    event_retention_s: float = Field(86400.0, ge=0, description="how long an ended job keeps all its events "
                                     "(0 = prune at the next sweep, every minute)")
    lease_s: float = Field(15.0, ge=1, le=600, description="a replica that stops renewing a lease for this "
                                                            "long is taken for dead")

    def service_addresses(self) -> dict[str, str]:
        return {"detector": self.detector_address, "sam3": self.sam3_address, "qwen": self.qwen_address,
                "classifier": self.classifier_address}

    def service_timeouts(self) -> dict[str, float]:
        return {"detector": self.detector_timeout_s, "sam3": self.sam3_timeout_s, "qwen": self.qwen_timeout_s,
                "classifier": self.classifier_timeout_s}
