"""Typed settings: one pydantic model per service, filled from defaults, then
environment variables (`TATOR_<SERVICE>_<FIELD>`), then CLI flags
(`--field-name`), later sources winning."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar, get_args, get_origin

from pydantic import BaseModel, Field

from tator_core import limits

S = TypeVar("S", bound="ServiceSettings")


def tator_home() -> Path:
    """Data/model root: $TATOR_HOME, default <repo>/.tator."""
    env = os.environ.get("TATOR_HOME")
    return Path(env) if env else Path(__file__).resolve().parent.parent / ".tator"


class ServiceSettings(BaseModel):
    """Settings every service has."""

    env_prefix: ClassVar[str] = "TATOR_"
    service_name: ClassVar[str] = "tator"

    host: str = Field("127.0.0.1", description="address to bind")
    port: int = Field(0, ge=0, le=65535, description="gRPC port (0 = pick a free one)")
    metrics_port: int = Field(-1, ge=-1, le=65535, description="Prometheus port (-1 = off, 0 = pick)")
    device: str = Field("auto", description="cpu, cuda:N or auto")
    registry: Path | None = Field(None, description="model registry YAML")
    max_message_mb: int = Field(64, ge=1, le=2048, description="max gRPC message size, both directions")
    max_in_flight: int = Field(64, ge=1, description="concurrent unary RPCs before RESOURCE_EXHAUSTED")
    max_request_items: int = Field(
        limits.MAX_REQUEST_ITEMS, ge=1, le=10_000_000,
        description="repeated-field items (every level, map entries too) one request may hold; over it "
                    "INVALID_ARGUMENT naming the field, before any rule is evaluated (checking a request "
                    "costs time and memory per item, on the event loop)")
    max_streams: int = Field(32, ge=1, description="concurrent server-streaming RPCs before RESOURCE_EXHAUSTED "
                             "(a budget of their own, so idle streams never starve unary calls)")
    max_image_pixels: int = Field(50_000_000, ge=1, description="pixels of one image (decompression-bomb limit)")
    max_decode_pixels: int = Field(100_000_000, ge=1, description="pixels all concurrent decodes of this "
                                   "service may materialise at once")
    min_image_side: int = Field(4, ge=1, description="shortest image side accepted, in pixels")
    max_image_aspect: float = Field(50.0, ge=1, description="longest side / shortest side accepted")
    image_cache_items: int = Field(64, ge=1, description="decoded images kept (LRU)")
    image_cache_mb: int = Field(1024, ge=1, description="decoded pixel bytes the image cache keeps (LRU)")
    grace_s: float = Field(10.0, ge=0, description="drain time on SIGTERM")
    log_level: str = Field("INFO", description="log level")
    auth_tokens_file: Path | None = Field(None, description="JSON {read, admin} bearer tokens; set = every RPC "
                                          "but Health and reflection needs a token (see tator_core/auth.py)")
    tls_cert_file: Path | None = Field(None, description="server certificate (PEM); with tls_key_file = TLS")
    tls_key_file: Path | None = Field(None, description="server private key (PEM)")
    tls_client_ca_file: Path | None = Field(None, description="CA of client certificates; set = mTLS required")
    warmup: bool = Field(True, description="load default models and run one inference before SERVING")
    otlp_endpoint: str = Field("", description="OpenTelemetry collector for traces, OTLP/gRPC "
                               "(e.g. http://otel-collector:4317); empty = spans are not exported")

    @classmethod
    def _env_key(cls, name: str) -> str:
        return f"{cls.env_prefix}{name.upper()}"

    @classmethod
    def load(cls: type[S], argv: Sequence[str] | None = None, **overrides: Any) -> S:
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = os.environ.get(cls._env_key(name))
            if raw is not None:
                values[name] = raw
        if argv is not None:
            parser = argparse.ArgumentParser(prog=f"python -m svc_{cls.service_name}")
            for name, info in cls.model_fields.items():
                flag = "--" + name.replace("_", "-")
                if _is_bool(info.annotation):
                    parser.add_argument(flag, dest=name, default=None,
                                        action=argparse.BooleanOptionalAction, help=info.description)
                else:
                    parser.add_argument(flag, dest=name, default=None, help=info.description)
            ns = parser.parse_args(list(argv))
            values.update({k: v for k, v in vars(ns).items() if v is not None})
        values.update(overrides)
        return cls(**values)


def _is_bool(annotation: Any) -> bool:
    if annotation is bool:
        return True
    return get_origin(annotation) is not None and bool in get_args(annotation)


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda:0' when CUDA exists else 'cpu'; 'cuda:N' is checked and pinned."""
    import torch

    device = device.strip().lower()
    if device == "auto":
        device = "cuda:0" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device == "cuda":
        device = "cuda:0"
    if not device.startswith("cuda:") or not device[5:].isdigit():
        raise ValueError(f"device must be cpu, cuda:N or auto, not {device!r}")
    index = int(device[5:])
    if not torch.cuda.is_available() or index >= torch.cuda.device_count():
        raise ValueError(f"device {device} is not available on this machine")
    torch.cuda.set_device(index)
    return device
