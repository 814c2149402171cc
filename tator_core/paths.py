"""Confinement of user-supplied paths to a root the operator chose.

A caller names a path relative to a root (or absolute, but inside it). Anything that lands
outside once `..` and symlinks are resolved is refused with one fixed message, whether or not it
exists, so a caller learns nothing about the rest of the file system. Messages about a confined
path show it relative to its root, never the server's absolute layout.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from tator_core import errors


def confine(root: Path, user_path: str, fld: str) -> Path:
    """The resolved path `user_path` names under `root`, or INVALID_ARGUMENT on `fld`."""
    outside = errors.invalid_argument(fld, "must name a path inside the service's data root")
    if not user_path or "\0" in user_path:
        raise outside
    base = Path(root).resolve()
    candidate = Path(user_path)
    if not candidate.is_absolute():
        candidate = base / candidate
    try:
        resolved = candidate.resolve(strict=False)
        resolved.relative_to(base)
    except (ValueError, OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise outside from exc
    return resolved


def shown(root: Path, path: Path) -> str:
    """`path` as a caller may see it: relative to `root` (POSIX form), else only its name."""
    try:
        rel = Path(path).resolve().relative_to(Path(root).resolve())
    except (ValueError, OSError, RuntimeError):
        return Path(path).name
    return str(PurePosixPath(*rel.parts)) if rel.parts else "."
