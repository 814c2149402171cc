"""Classifier heads under the shared model lifecycle (tator_core.lifecycle.ModelRepository).

Registry heads and heads trained by the service live in one repository: they list with the
lifecycle's states, load on first use, stay down after UnloadModel until LoadModel, take the
default like any model, and a broken artifact is FAILED with its reason until its files change.
No backbone is needed: these heads are never paired here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from svc_classifier.models import ClassifierModels
from svc_classifier.runtime import ClassifierRuntime
from svc_classifier.settings import ClassifierSettings
from tator_core.errors import TatorError
from tests.test_classifier_units import make_head


def _runtime(tmp_path: Path) -> ClassifierRuntime:
    make_head(seed=1).save(tmp_path / "models" / "reg-a")
    make_head(seed=2).save(tmp_path / "models" / "reg-b")
    (tmp_path / "models" / "registry.yaml").write_text(yaml.safe_dump({"models": [
        {"id": "reg-a", "family": "head", "path": "reg-a", "options": {"backbone": "bb"}},
        {"id": "reg-b", "family": "head", "path": "reg-b"},
        {"id": "reg-gone", "family": "head", "path": "nowhere"}]}))
    settings = ClassifierSettings.load([], registry=tmp_path / "models" / "registry.yaml",
                                       heads_dir=tmp_path / "heads", data_root=tmp_path / "data", device="cpu",
                                       port=0, metrics_port=0)
    return ClassifierRuntime(settings)


def _states(runtime: ClassifierRuntime) -> dict[str, tuple[str, bool, bool]]:
    return {s.id: (s.state, s.loaded, s.is_default) for s in runtime.model_infos() if s.family == "head"}


def test_heads_list_with_the_lifecycle_states(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    try:
        # Listing loads the heads (they are small); the first registry head is the default.
        assert _states(runtime) == {"reg-a": ("READY", True, True), "reg-b": ("READY", True, False),
                                    "reg-gone": ("MISSING", False, False)}
        a = runtime.heads.status("reg-a")
        assert a.device == "cpu" and a.labelmap == ["a", "b", "__bg_background"] and a.version
        info = runtime.head_info("reg-a")
        assert info.extra["source"] == "registry" and info.extra["head_type"] == "logreg"
        assert info.extra["backbone"] == "bb"
        with pytest.raises(TatorError) as err:
            runtime.head("reg-gone")
        assert err.value.reason == "MODEL_MISSING"
    finally:
        asyncio.run(runtime.close())


def test_unload_holds_a_head_down_until_load(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    models = ClassifierModels(runtime)

    async def scenario() -> None:
        await models.unload("reg-b")
        with pytest.raises(TatorError) as err:
            runtime.head("reg-b")
        assert (err.value.code.name, err.value.reason) == ("FAILED_PRECONDITION", "MODEL_UNLOADED")
        assert models.status("reg-b").state == "AVAILABLE" and not models.status("reg-b").loaded
        await models.load("reg-b")
        assert runtime.head("reg-b").classes == ["a", "b", "__bg_background"]
        await runtime.close()

    asyncio.run(scenario())


def test_a_broken_head_is_failed_until_its_files_change(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    meta = tmp_path / "models" / "reg-b" / "head.json"
    good = meta.read_text()
    meta.write_text("{not json")
    try:
        with pytest.raises(TatorError) as err:
            runtime.head("reg-b")
        assert err.value.reason == "MODEL_LOAD_FAILED" and "reg-b" in err.value.message
        status = runtime.heads.status("reg-b")
        assert status.state == "FAILED" and "cannot read head files" in status.reason
        meta.write_text(good)  # a fixed artifact (new size and mtime) is loaded again
        assert runtime.head("reg-b").id == "reg-b"
    finally:
        asyncio.run(runtime.close())


def test_a_trained_head_is_adopted_and_found_again_after_a_restart(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    head = make_head(seed=3)
    head.id = "t-new"
    runtime.register_trained(head, make_default=True)
    assert runtime.default_head_id == "t-new" and runtime.head("t-new") is head
    assert runtime.head_info("t-new").extra["source"] == "trained"
    with pytest.raises(TatorError) as err:  # only a registry head's default can be persisted
        asyncio.run(ClassifierModels(runtime).set_default("t-new"))
    assert err.value.reason == "MODEL_REQUIRED"
    with pytest.raises(TatorError) as err:  # a registry id is not free for training
        runtime.check_new_head_id("reg-a")
    assert err.value.code.name == "INVALID_ARGUMENT"
    asyncio.run(runtime.close())

    restarted = _runtime(tmp_path)
    try:
        # The registry file still names its own default; the trained head is known again, not loaded yet.
        assert restarted.default_head_id == "reg-a"
        assert restarted.heads.status("t-new").state == "AVAILABLE"
        assert restarted.head("t-new").classes == head.classes
    finally:
        asyncio.run(restarted.close())
