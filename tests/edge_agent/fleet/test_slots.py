"""A/B model slots: verified install into the idle slot, atomic switch, rollback; tampered packages refused."""

from __future__ import annotations

import json

import pytest

from edgefleet import protocol
from edgefleet.protocol import PipelineConfig, TwinDesired
from edge_agent.errors import ModelInstallError
from edge_agent.fleet.slots import ModelSlots
from edge_agent.fleet.state import StateDir


@pytest.fixture()
def state(state_dir) -> StateDir:
    s = StateDir(state_dir)
    s.ensure()
    return s


@pytest.fixture()
def slots(state: StateDir, packages) -> ModelSlots:
    packages.trust(state)
    return ModelSlots(state.slots_dir, state.signing_key_path, state.packages_dir)


def test_install_goes_to_the_idle_slot_and_switch_is_atomic(slots, packages):
    first = slots.install(packages.make("1"))
    assert first.slot == "A" and slots.active() is None  # installed, not yet active
    slots.activate("A")
    second = slots.install(packages.make("2"))
    assert second.slot == "B"
    assert slots.active().manifest.version == "1"  # the running slot was not touched
    slots.activate("B")
    pointer = json.loads((slots.root / "current.json").read_text())
    assert pointer == {"active": "B", "previous": "A"}
    back = slots.rollback()
    assert back.slot == "A" and back.manifest.version == "1"
    assert slots.active().slot == "A"


def test_tampered_package_is_refused_and_active_slot_untouched(slots, packages, tmp_path):
    slots.activate(slots.install(packages.make("1")).slot)
    good = packages.make("2")
    data = bytearray(good.read_bytes())
    at = data.find(b"\x08\x08")  # inside the ONNX payload, after the tar headers
    data[at if at > 0 else len(data) // 2] ^= 0xFF
    tampered = tmp_path / "tampered.efpkg"
    tampered.write_bytes(bytes(data))
    with pytest.raises(ModelInstallError, match="refused model package"):
        slots.install(tampered)
    assert slots.active().manifest.version == "1"
    assert not (slots.root / ".B.incoming").exists()


def test_package_signed_by_another_key_is_refused(slots, packages, tmp_path):
    from tests.edge_agent.conftest import PackageMaker

    stranger = PackageMaker(tmp_path / "stranger").make("9")
    with pytest.raises(ModelInstallError, match="refused"):
        slots.install(stranger)
    assert slots.active() is None


def test_package_must_match_the_desired_reference(slots, packages, state):
    ref = packages.cache(state, packages.make("1"))
    wrong = ref.model_copy(update={"version": "2"})
    with pytest.raises(ModelInstallError, match="expected tiny 2"):
        slots.install(slots.locate(ref), expect=wrong)
    with pytest.raises(ModelInstallError, match="not available locally"):
        slots.locate(ref.model_copy(update={"sha256": "0" * 64}))


def test_desired_model_is_installed_switched_and_reported(device, probe, agent_config, packages):
    dev = agent_config.device_id
    packages.trust(device.state)
    ref = packages.cache(device.state, packages.make("1"))
    probe.desire(TwinDesired(revision=1, model=ref, pipeline=PipelineConfig(telemetry_interval_s=0.25)))
    reported = probe.last(protocol.twin_reported_topic(dev), lambda d: d["desired_revision"] == 1)
    assert reported["last_error"] is None
    assert reported["model"]["sha256"] == ref.sha256 and reported["slot"] == "A"
    event = probe.last(protocol.events_topic(dev), lambda d: d["kind"] == "model")
    assert "tiny 1" in event["message"]
    t = probe.last(protocol.telemetry_topic(dev), lambda d: d["model_version"] == "1")
    assert t["model_name"] == "tiny"


def test_model_that_fails_to_load_is_rolled_back(device, probe, agent_config, packages):
    dev = agent_config.device_id
    packages.trust(device.state)
    good = packages.cache(device.state, packages.make("1"))
    probe.desire(TwinDesired(revision=1, model=good, pipeline=PipelineConfig(telemetry_interval_s=0.25)))
    probe.last(protocol.twin_reported_topic(dev), lambda d: d["desired_revision"] == 1)
    broken = packages.cache(device.state, packages.make("2", onnx=b"not an onnx model"))  # signed, but broken
    probe.desire(TwinDesired(revision=2, model=broken, pipeline=PipelineConfig(telemetry_interval_s=0.25)))
    reported = probe.last(protocol.twin_reported_topic(dev), lambda d: d["desired_revision"] == 2)
    assert "failed to load" in reported["last_error"]
    assert reported["model"]["sha256"] == good.sha256 and reported["slot"] == "A"
    assert device.slots.active().manifest.version == "1"
    before = device.host.stats().frames_inferred
    probe.last(protocol.telemetry_topic(dev), lambda d: d["frames_inferred"] > before and d["model_version"] == "1")
