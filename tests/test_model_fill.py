"""The model-fill Job's program (tator_core.model_fill): fills a models volume
from a directory or a tar archive at a URL, checks the registry and weights
before anything is visible, replaces registry.yaml last, keeps what the source
does not hold (trained heads), and refuses bad sources without touching DEST."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import yaml

from tator_core import model_fill
from tator_core.registry import Registry


def make_source(root: Path, weights: bytes = b"new weights") -> Path:
    (root / "yolo-a").mkdir(parents=True)
    (root / "yolo-a" / "best.pt").write_bytes(weights)
    (root / "clip-a").mkdir()
    (root / "clip-a" / "config.json").write_text("{}")
    (root / "registry.yaml").write_text(yaml.safe_dump({"models": [
        {"id": "yolo-a", "family": "yolo", "path": "yolo-a/best.pt", "labelmap": ["a"], "default": True},
        {"id": "clip-a", "family": "clip", "path": "clip-a", "default": True}]}))
    return root


def make_tar(src: Path, out: Path, prefix: str = "models") -> Path:
    with tarfile.open(out, "w:gz") as tar:
        tar.add(src, arcname=prefix)
    return out


def existing_dest(dest: Path) -> Path:
    """A volume that was filled before and has a trained head."""
    make_source(dest, weights=b"old weights")
    (dest / "heads" / "h1").mkdir(parents=True)
    (dest / "heads" / "h1" / "head.json").write_text("{}")
    return dest


def test_fill_from_dir_replaces_models_and_keeps_heads(tmp_path: Path) -> None:
    dest = existing_dest(tmp_path / "volume")
    src = make_source(tmp_path / "src")
    registry = model_fill.fill(dest, from_dir=src)
    assert set(registry.entries) == {"yolo-a", "clip-a"}
    assert (dest / "yolo-a" / "best.pt").read_bytes() == b"new weights"
    assert (dest / "heads" / "h1" / "head.json").exists()
    assert Registry.load(dest / "registry.yaml").get("yolo-a").path == (dest / "yolo-a" / "best.pt").resolve()
    # Nothing of the staging is left on the volume.
    assert sorted(p.name for p in dest.iterdir()) == ["clip-a", "heads", "registry.yaml", "yolo-a"]


def test_filled_files_are_readable_by_other_users(tmp_path: Path) -> None:
    """A source written 0600 (as temp-file writers leave it) must not end up
    unreadable to services running as another uid."""
    src = make_source(tmp_path / "src")
    (src / "yolo-a" / "best.pt").chmod(0o600)
    (src / "clip-a").chmod(0o700)
    dest = tmp_path / "volume"
    model_fill.fill(dest, from_dir=src)
    assert (dest / "yolo-a" / "best.pt").stat().st_mode & 0o777 == 0o644
    assert (dest / "clip-a").stat().st_mode & 0o777 == 0o755
    assert (dest / "registry.yaml").stat().st_mode & 0o777 == 0o644


def test_fill_from_url_checks_the_digest(tmp_path: Path) -> None:
    archive = make_tar(make_source(tmp_path / "src"), tmp_path / "models.tar.gz")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    dest = tmp_path / "volume"
    model_fill.fill(dest, url=archive.as_uri(), sha256=digest)
    assert (dest / "yolo-a" / "best.pt").read_bytes() == b"new weights"

    old = existing_dest(tmp_path / "volume2")
    before = (old / "registry.yaml").read_text()
    with pytest.raises(model_fill.FillError, match="sha256"):
        model_fill.fill(old, url=archive.as_uri(), sha256="0" * 64)
    assert (old / "registry.yaml").read_text() == before
    assert (old / "yolo-a" / "best.pt").read_bytes() == b"old weights"


@pytest.mark.parametrize("member", ["../evil.txt", "/abs/evil.txt", "link"])
def test_hostile_archive_is_refused_before_anything_is_written(tmp_path: Path, member: str) -> None:
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo(member)
        if member == "link":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    dest = existing_dest(tmp_path / "volume")
    with pytest.raises(model_fill.FillError):
        model_fill.fill(dest, url=archive.as_uri())
    assert not (tmp_path / "evil.txt").exists()
    assert (dest / "yolo-a" / "best.pt").read_bytes() == b"old weights"


def test_missing_weights_leave_the_volume_alone(tmp_path: Path) -> None:
    src = make_source(tmp_path / "src")
    (src / "yolo-a" / "best.pt").unlink()
    dest = existing_dest(tmp_path / "volume")
    with pytest.raises(model_fill.FillError, match="yolo-a"):
        model_fill.fill(dest, from_dir=src)
    assert (dest / "yolo-a" / "best.pt").read_bytes() == b"old weights"


def test_main_reports_errors_as_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert model_fill.main(["--dest", str(tmp_path / "v"), "--from-dir", str(tmp_path / "nowhere")]) == 1
    assert "model-fill:" in capsys.readouterr().err
    src = make_source(tmp_path / "src")
    assert model_fill.main(["--dest", str(tmp_path / "v"), "--from-dir", str(src)]) == 0
    assert "yolo-a\tyolo" in capsys.readouterr().out
