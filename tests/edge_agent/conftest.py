"""Fixtures for the fleet-connected agent: enrolled-looking state dirs, and a plain paho client acting as the
fleet server (subscribes to a device's topics, publishes desired twins and commands)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgefleet import protocol
from edge_agent.fleet.sim import SimulatedDevice
from edge_agent.fleet.state import AgentConfig, StateDir


def make_config(port: int, **overrides) -> AgentConfig:
    device_id = overrides.pop("device_id", f"t-{uuid.uuid4().hex[:12]}")
    values = dict(device_id=device_id, server_url="http://127.0.0.1:9", broker_url=f"mqtt://127.0.0.1:{port}",
                  mqtt_username=device_id, telemetry_interval_s=0.3)
    values.update(overrides)
    return AgentConfig(**values)


def write_state(root: Path, config: AgentConfig) -> StateDir:
    state = StateDir(root)
    state.ensure()
    state.save_config(config)
    return state


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> dict:
        return json.loads(self.payload)


@dataclass
class FleetProbe:
    """The server's side of one device's topics, as a real MQTT client."""

    device_id: str
    port: int
    messages: list[Received] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:8]}")
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        self.client.subscribe(f"{protocol.TOPIC_ROOT}/{self.device_id}/#", qos=1)
        assert subscribed.wait(5)

    def _on_message(self, client, userdata, message) -> None:
        with self._cond:
            self.messages.append(Received(message.topic, bytes(message.payload), bool(message.retain)))
            self._cond.notify_all()

    def on(self, topic: str) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, predicate: Callable[[list[Received]], object], timeout: float = 10.0, what: str = ""):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate(list(self.messages))
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    topics = sorted({m.topic for m in self.messages})
                    raise AssertionError(f"timed out waiting for {what or predicate}; saw topics {topics}")
                self._cond.wait(left)

    def last(self, topic: str, where: Callable[[dict], bool] = lambda d: True, timeout: float = 10.0) -> dict:
        def find(messages):
            for m in reversed(messages):
                if m.topic == topic and m.payload and where(m.json()):
                    return m.json()
            return None

        return self.wait_for(find, timeout, what=f"a message on {topic}")

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def desire(self, desired: protocol.TwinDesired) -> None:
        self.publish(protocol.twin_desired_topic(self.device_id), desired.encode(), retain=True)

    def command(self, name: str, request_id: str | None = None, **kwargs) -> dict:
        request_id = request_id or uuid.uuid4().hex[:12]
        self.publish(protocol.cmd_topic(self.device_id, request_id), protocol.Command(name=name, **kwargs).encode())
        return self.last(protocol.cmd_reply_topic(self.device_id, request_id))

    def close(self) -> None:
        for topic in (protocol.status_topic(self.device_id), protocol.twin_desired_topic(self.device_id),
                      protocol.twin_reported_topic(self.device_id)):
            self.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)  # leave the broker tidy
        self.client.disconnect()
        self.client.loop_stop()


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
