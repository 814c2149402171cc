"""Path confinement: every user-supplied path stays under its root, and the refusal is the same
whether the outside path exists or not."""

from __future__ import annotations

import os

import grpc
import pytest

from tator_core import errors
from tator_core.paths import confine, shown


def refusal(root, user: str) -> str:
    with pytest.raises(errors.TatorError) as ei:
        confine(root, user, "dataset_dir")
    assert ei.value.code == grpc.StatusCode.INVALID_ARGUMENT and ei.value.field_violations[0][0] == "dataset_dir"
    return ei.value.message


def test_inside_paths_resolve_under_the_root(tmp_path):
    (tmp_path / "ds" / "a").mkdir(parents=True)
    assert confine(tmp_path, "ds", "f") == (tmp_path / "ds").resolve()
    assert confine(tmp_path, "ds/a/..", "f") == (tmp_path / "ds").resolve()
    assert confine(tmp_path, str(tmp_path / "ds" / "a"), "f") == (tmp_path / "ds" / "a").resolve()
    assert confine(tmp_path, "not-yet", "f") == (tmp_path / "not-yet").resolve()


def test_outside_paths_get_one_answer(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret").mkdir()
    os.symlink(tmp_path / "secret", root / "link")
    answers = {refusal(root, p) for p in ("/etc", "/no/such/dir", "..", "../secret", "../nope", "link",
                                          "link/x", str(tmp_path / "secret"), "", "a\0b")}
    assert len(answers) == 1
    assert str(tmp_path) not in answers.pop()


def test_shown_is_relative_to_the_root(tmp_path):
    assert shown(tmp_path, tmp_path / "a" / "b") == "a/b"
    assert shown(tmp_path / "x", tmp_path / "y" / "z") == "z"


def test_unexpected_errors_shown_to_callers_carry_no_paths(tmp_path):
    from tator_core.errors import public_text

    try:
        (tmp_path / "secret-dir" / "x").read_text()
    except OSError as exc:
        shown_text = public_text(exc)
    assert shown_text == "FileNotFoundError: No such file or directory" and str(tmp_path) not in shown_text
    assert public_text(OSError(28, "No space left on device", "/var/cache/x")) == "OSError: No space left on device"
    assert public_text(KeyError("/home/op/.secret")) == "KeyError"
