"""`tator up` planning: one GPU per model service, commands and addresses from one config."""

from __future__ import annotations

from tator_cli import stack


def test_every_service_known_and_installed():
    services = stack.load_config()
    assert list(services) == list(stack.ORDER)
    assert all(s.installed for s in services.values())
    assert len({s.address for s in services.values()}) == 5


def test_one_gpu_per_model_service():
    services = stack.load_config()
    stack.assign_devices(services, 4)
    assert [services[n].device for n in ("detector", "sam3", "qwen", "classifier")] == \
        ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    assert services["orchestrator"].device == "cpu"
    stack.assign_devices(services, 2)  # fewer GPUs: round-robin
    assert [services[n].device for n in ("detector", "sam3", "qwen", "classifier")] == \
        ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    stack.assign_devices(services, 0)
    assert {s.device for s in services.values()} == {"cpu"}


def test_commands_carry_flags_and_addresses(monkeypatch, tmp_path):
    monkeypatch.setenv("TATOR_HOME", str(tmp_path))
    services = stack.load_config()
    stack.assign_devices(services, 1)
    cmd, env = stack.command_for(services["sam3"], services)
    assert cmd[1:3] == ["-m", "svc_sam3"]
    assert cmd[cmd.index("--device") + 1] == "cuda:0"
    assert cmd[cmd.index("--registry") + 1] == str(tmp_path / "models" / "registry.yaml")
    cmd, env = stack.command_for(services["orchestrator"], services)
    assert "--registry" not in cmd
    assert env["TATOR_ORCHESTRATOR_DETECTOR_ADDRESS"] == services["detector"].address
    assert env["TATOR_HOME"] == str(tmp_path)
