"""Fixtures for the fleet-connected agent: enrolled-looking state dirs, and an MQTT client acting as the fleet
server (subscribes to a device's topics, publishes desired twins and commands)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgefleet import protocol
from edgefleet.protocol.control import ControlSigner
from edge_agent.fleet.sim import SimulatedDevice
from edge_agent.fleet.state import AgentConfig, StateDir
from tests.mqtt_client import Peer, unique_id


def make_config(port: int, **overrides) -> AgentConfig:
    device_id = overrides.pop("device_id", unique_id("agent"))
    values = dict(device_id=device_id, server_url="http://127.0.0.1:9", broker_url=f"mqtt://127.0.0.1:{port}",
                  mqtt_username=device_id, telemetry_interval_s=0.3)
    values.update(overrides)
    return AgentConfig(**values)


# The fleet server's control key in these tests: every agent state dir pins its public half, as enrollment does,
# and the probe acting as the server seals desired twins and commands with it.
SERVER_CONTROL = ControlSigner(Ed25519PrivateKey.generate())


def write_state(root: Path, config: AgentConfig, *, control: ControlSigner = SERVER_CONTROL) -> StateDir:
    from models.signing import public_key_pem

    state = StateDir(root)
    state.ensure()
    state.save_config(config)
    state.write_public(state.control_key_path, public_key_pem(control.public_key))
    return state


class FleetProbe(Peer):
    """The server's side of one device's topics: subscribed to all of them from the start."""

    def __init__(self, device_id: str, port: int, **kwargs: object) -> None:
        super().__init__(port, unique_id("probe"), **kwargs)
        self.device_id = device_id
        assert not self.connect().is_failure
        self.subscribe(f"{protocol.TOPIC_ROOT}/{device_id}/#")

    def desire(self, desired: protocol.TwinDesired) -> None:
        self.send(protocol.twin_desired_topic(self.device_id), desired.encode(), retain=True)

    def send(self, topic: str, body: bytes, *, retain: bool = False, control: ControlSigner = SERVER_CONTROL) -> None:
        """Publish ``body`` sealed as the server seals control messages."""
        self.publish(topic, control.seal(topic, body), retain=retain)

    def command(self, name: str, request_id: str | None = None, **kwargs) -> dict:
        """Send a command and return the device's reply (waits for it)."""
        request_id = request_id or uuid.uuid4().hex[:12]
        self.send(protocol.cmd_topic(self.device_id, request_id), protocol.Command(name=name, **kwargs).encode())
        return self.last(protocol.cmd_reply_topic(self.device_id, request_id))


@pytest.fixture()
def agent_config(mosquitto_port: int) -> AgentConfig:
    return make_config(mosquitto_port)


@pytest.fixture()
def probe(agent_config: AgentConfig, mosquitto_port: int) -> Iterator[FleetProbe]:
    p = FleetProbe(agent_config.device_id, mosquitto_port)
    yield p
    p.close()


@pytest.fixture()
def device(agent_config: AgentConfig, state_dir: Path, probe: FleetProbe) -> Iterator[SimulatedDevice]:
    """A started simulated device (the real agent code, synthetic camera and numpy model)."""
    write_state(state_dir, agent_config)
    dev = SimulatedDevice(agent_config, state_dir, fps=20, event_min_interval_s=0.2).start()
    assert dev.wait_ready(10)
    yield dev
    dev.stop()


# Signed model packages -------------------------------------------------------------------------------------------

def tiny_onnx_bytes() -> bytes:
    """A real ONNX classifier over an 8x8 grey image (flatten + matmul to 3 classes)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.linspace(-1, 1, 192, dtype=np.float32).reshape(64, 3), "W")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"]), helper.make_node("MatMul", ["flat", "W"], ["logits"])],
        "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])], initializer=[weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


@dataclass
class PackageMaker:
    """Signs packages with a fresh fleet key and drops them into a state dir's local package cache."""

    workdir: Path

    def __post_init__(self) -> None:
        from models.signing import generate_private_key

        self.key = generate_private_key()

    def public_pem(self) -> str:
        from models.signing import public_key_pem

        return public_key_pem(self.key)

    def trust(self, state: StateDir) -> None:
        state.write_public(state.signing_key_path, self.public_pem())

    def make(self, version: str, onnx: bytes | None = None, name: str = "tiny") -> Path:
        from models.manifest import InputSpec, Manifest, Runtimes
        from models.package import pack

        src = self.workdir / f"src-{name}-{version}"
        src.mkdir(parents=True, exist_ok=True)
        (src / "model.onnx").write_bytes(tiny_onnx_bytes() if onnx is None else onnx)
        manifest = Manifest(name=name, version=version, task="classification",
                            input=InputSpec(shape=[1, 1, 8, 8], color_order="GRAY"), labels=["r", "g", "b"],
                            runtimes=Runtimes(onnx="model.onnx"))
        return pack(manifest, {"model.onnx": src / "model.onnx"}, self.workdir / "out", self.key)

    def cache(self, state: StateDir, package: Path) -> protocol.ModelRef:
        """Put ``package`` where the agent looks for it and return the desired-twin reference to it."""
        import shutil

        from models.package import file_sha256, read_manifest

        sha = file_sha256(package)
        state.packages_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(package, state.package_path(sha))
        manifest = read_manifest(package)
        return protocol.ModelRef(name=manifest.name, version=manifest.version, sha256=sha)


@pytest.fixture()
def packages(tmp_path: Path) -> PackageMaker:
    pytest.importorskip("models.package")
    return PackageMaker(tmp_path / "packages-work")
