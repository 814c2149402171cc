"""Stable hashes of JSON-able values and of weight files."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def stable_hash(value: object) -> str:
    """SHA-256 of the canonical JSON of value."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


_file_cache: dict[tuple[tuple[str, int, int], ...], str] = {}
_file_lock = threading.Lock()


def _version_key(path: Path) -> tuple[list[Path], tuple[tuple[str, int, int], ...]]:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return files, tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)


def cached_path_version(path: str | Path) -> str | None:
    """path_version's answer when it is cached and the files are unchanged, else None. Only stats
    files, never reads them, so an event loop may call it (ListModels without a thread hop)."""
    _, key = _version_key(Path(path))
    with _file_lock:
        return _file_cache.get(key)


def path_version(path: str | Path) -> str:
    """SHA-256 of a file, or of a directory's files (relative names + bytes).

    Cached on (path, size, mtime) of every file so ListModels stays cheap.
    """
    path = Path(path)
    files, key = _version_key(path)
    with _file_lock:
        if key in _file_cache:
            return _file_cache[key]
    h = hashlib.sha256()
    for p in files:
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode() + b"\0")
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    digest = h.hexdigest()
    with _file_lock:
        _file_cache[key] = digest
    return digest


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write via a temp file in the same directory, fsync, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
