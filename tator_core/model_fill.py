"""Fill a models volume: `python -m tator_core.model_fill --dest DIR (--url URL | --from-dir DIR)`.

Run by the model-fill Job (k8s/jobs/model-fill) before the first rollout. The
source is a tar archive (from a URL, checked against --sha256) or a directory
(copied out of a models image by an init container); either holds
`registry.yaml` and the weights it names, paths relative to the registry.

No half-written weights are ever visible to the services: the source is
unpacked into a staging directory on the same volume, the registry is loaded
and every model path checked there, each top-level model directory is swapped
in with a rename, and `registry.yaml` is replaced last (one atomic rename). Entries already in DEST
that the source does not hold (trained heads, for one) are left alone.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from tator_core.registry import Registry

REGISTRY = "registry.yaml"
_CHUNK = 1 << 20


class FillError(RuntimeError):
    pass


def download(url: str, dest: Path, sha256: str | None) -> Path:
    """Stream `url` to a file under `dest`, checking the digest when given."""
    digest = hashlib.sha256()
    fd, name = tempfile.mkstemp(prefix=".fill-", suffix=".tar", dir=dest)
    with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:  # the operator's URL
        while chunk := resp.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
    if sha256 and digest.hexdigest() != sha256.lower():
        os.unlink(name)
        raise FillError(f"sha256 of {url} is {digest.hexdigest()}, expected {sha256}")
    return Path(name)


def _safe_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """Regular files and directories inside the archive root only: no absolute
    paths, no `..`, no links or devices (a hostile archive must not write
    outside the staging directory)."""
    members = []
    for m in tar.getmembers():
        parts = Path(m.name).parts
        if Path(m.name).is_absolute() or ".." in parts:
            raise FillError(f"archive member {m.name!r} leaves the archive root")
        if not (m.isfile() or m.isdir()):
            raise FillError(f"archive member {m.name!r} is not a regular file or directory")
        members.append(m)
    return members


def unpack(archive: Path, staging: Path) -> None:
    with tarfile.open(archive) as tar:
        members = _safe_members(tar)
        tar.extractall(staging, members=members)  # members checked above


def source_root(staging: Path) -> Path:
    """The directory holding registry.yaml: the staging root, or its single
    top-level directory (archives made with `tar -C parent models`)."""
    if (staging / REGISTRY).is_file():
        return staging
    subdirs = [p for p in staging.iterdir() if p.is_dir()]
    if len(subdirs) == 1 and (subdirs[0] / REGISTRY).is_file():
        return subdirs[0]
    raise FillError(f"no {REGISTRY} at the top of the source")


def check(root: Path) -> Registry:
    registry = Registry.load(root / REGISTRY)
    missing = [e.id for e in registry.entries.values() if not e.exists]
    if not registry.entries:
        raise FillError(f"{REGISTRY} lists no models")
    if missing:
        raise FillError(f"weights missing for {', '.join(sorted(missing))}")
    return registry


def make_readable(root: Path) -> None:
    """Weights are not secret, but a file written 0600 by one user is
    unreadable to a service running as another: directories 0755, files
    0644 (tools that write through a temporary file often leave 0600)."""
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)


def install(root: Path, dest: Path) -> list[str]:
    """Move every top-level entry of `root` into `dest`, registry last."""
    moved = []
    trash = Path(tempfile.mkdtemp(prefix=".fill-old-", dir=dest))
    for item in sorted(root.iterdir()):
        if item.name == REGISTRY:
            continue
        target = dest / item.name
        if target.exists():
            target.rename(trash / item.name)
        item.rename(target)
        moved.append(item.name)
    os.replace(root / REGISTRY, dest / REGISTRY)
    shutil.rmtree(trash, ignore_errors=True)
    return moved


def fill(dest: Path, *, url: str | None = None, from_dir: Path | None = None, sha256: str | None = None) -> Registry:
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fill-staging-", dir=dest))
    archive = None
    try:
        if url:
            archive = download(url, dest, sha256)
            unpack(archive, staging)
        elif from_dir:
            shutil.copytree(from_dir, staging, dirs_exist_ok=True, symlinks=False)
        else:
            raise FillError("give --url or --from-dir")
        root = source_root(staging)
        check(root)
        make_readable(root)
        install(root, dest)
        return check(dest)
    finally:
        if archive is not None:
            archive.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tator_core.model_fill", description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, required=True, help="the models volume (registry.yaml goes here)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--url", help="tar archive (optionally compressed) holding registry.yaml and weights")
    src.add_argument("--from-dir", type=Path, help="directory holding registry.yaml and weights")
    parser.add_argument("--sha256", help="expected sha256 of the archive at --url")
    args = parser.parse_args(argv)
    try:
        registry = fill(args.dest, url=args.url, from_dir=args.from_dir, sha256=args.sha256)
    except (FillError, OSError, tarfile.TarError, ValueError) as exc:
        print(f"model-fill: {exc}", file=sys.stderr)
        return 1
    for entry in registry.entries.values():
        print(f"{entry.id}\t{entry.family}\t{entry.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
