"""The server's OTA end (fleet_server.ota) over both brokers, with a plain MQTT client acting as the device: it
answers each block request with exactly that block of a real signed package, refuses and counts what it may not
serve without ever stopping, and bounds what one device may have in flight."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from edgefleet import protocol as p
from fleet_server.mqtt_bridge import MqttBridge
from fleet_server.ota import OtaServer
from tests.edge_agent.conftest import PackageMaker
from tests.fleet_server.bridge_env import Env, bridge, embedded_broker, env  # noqa: F401
from tests.fleet_server.ota_env import Catalog, OtaRecorder, ota_server
from tests.mqtt_client import Peer
from tests.waiting import wait_for


@pytest.fixture()
def recorder() -> OtaRecorder:
    return OtaRecorder()


@pytest.fixture()
def catalog(tmp_path: Path) -> Catalog:
    return Catalog(tmp_path / "server-packages")


@pytest.fixture()
def package(tmp_path: Path, catalog: Catalog) -> p.ModelRef:
    pytest.importorskip("models.package")
    return catalog.add(PackageMaker(tmp_path / "work").make("1.0", onnx=bytes(range(256)) * 40))


@pytest.fixture()
def served(recorder: OtaRecorder, catalog: Catalog, bridge: MqttBridge):  # noqa: ANN201
    server = ota_server(recorder, catalog, bridge.publish_ota_block, max_block=4096)
    yield server
    server.close()


def device(env: Env) -> tuple[str, Peer]:
    dev = env.device()
    peer = env.connect(dev)
    assert peer.subscribe(f"{p.TOPIC_ROOT}/{dev}/ota/data/#") == [True]
    return dev, peer


def ask(peer: Peer, dev: str, sha: str, offset: int, length: int, count: int = 1) -> None:
    peer.publish(p.ota_get_topic(dev), p.OtaGet(sha256=sha, offset=offset, length=length, count=count).encode())


def test_each_request_is_answered_with_exactly_that_block(env: Env, catalog: Catalog, package: p.ModelRef,
                                                          served: OtaServer) -> None:
    dev, peer = device(env)
    catalog.assign(dev, package.sha256)
    data = catalog.path(package.sha256).read_bytes()
    last = package.size - 100  # the server reads what is left: a short block
    for offset in (0, 4096, last):
        ask(peer, dev, package.sha256, offset, 4096)
        block = peer.expect(p.ota_data_topic(dev, package.sha256, offset))
        assert block.payload == data[offset:offset + 4096] and not block.retain
    assert len(peer.expect(p.ota_data_topic(dev, package.sha256, last)).payload) == 100
    wait_for(lambda: served.served == 3, what="3 blocks counted as served")
    assert served.bytes_served == 8192 + 100 and not served.refused


def test_a_run_of_blocks_is_answered_block_by_block_within_the_in_flight_limit(
        env: Env, recorder: OtaRecorder, bridge: MqttBridge, catalog: Catalog, package: p.ModelRef) -> None:
    server = ota_server(recorder, catalog, bridge.publish_ota_block, max_in_flight=4, max_block=4096)
    try:
        dev, peer = device(env)
        catalog.assign(dev, package.sha256)
        data = catalog.path(package.sha256).read_bytes()
        length = 3000
        first = (package.size // length - 1) * length  # a whole block, then the package's short end
        assert package.size % length
        ask(peer, dev, package.sha256, first, length, count=3)  # the 3rd block starts past the end
        for offset in (first, first + length):
            block = peer.expect(p.ota_data_topic(dev, package.sha256, offset))
            assert block.payload == data[offset:offset + length]
        wait_for(lambda: server.refusals() == {"offset_past_end": 1}, what=lambda: str(server.refused))
        wait_for(lambda: server.in_flight(dev) == 0, what="nothing in flight")
        ask(peer, dev, package.sha256, 0, length, count=5)  # more than the 4 blocks this device may have in flight
        peer.publish(p.ota_get_topic(dev), p.OtaGet(sha256=package.sha256, offset=0, length=1).encode().replace(
            b'"count":1', f'"count":{p.MAX_OTA_BLOCKS_PER_GET + 1}'.encode()))  # over the protocol's limit
        ask(peer, dev, package.sha256, length, length, count=2)
        for offset in (length, 2 * length):
            assert peer.expect(p.ota_data_topic(dev, package.sha256, offset)).payload == data[offset:offset + length]
        wait_for(lambda: server.refusals() == {"offset_past_end": 1, "busy": 1}, what=lambda: str(server.refused))
        wait_for(lambda: server.served == 4, what="4 blocks counted as served")
        assert bridge.refused["malformed"] == 1 and peer.topics().count(p.ota_data_topic(dev, package.sha256, 0)) == 0
    finally:
        server.close()


def test_refusals_are_counted_by_reason_and_serving_goes_on(env: Env, bridge: MqttBridge, catalog: Catalog,
                                                             package: p.ModelRef, served: OtaServer) -> None:
    dev, peer = device(env)
    other, _ = device(env)
    catalog.assign(other, package.sha256)  # assigned to another device only, for now
    ask(peer, dev, "f" * 64, 0, 1024)  # no such package
    ask(peer, dev, package.sha256, 0, 1024)  # not assigned to this device
    wait_for(lambda: served.refusals() == {"unknown": 1, "unassigned": 1}, what=lambda: str(served.refused))
    catalog.assign(dev, package.sha256)
    ask(peer, dev, package.sha256, package.size, 1024)  # the first byte past the end
    ask(peer, dev, package.sha256, 0, 8192)  # over this server's max_block (4096)
    peer.publish(p.ota_get_topic(dev), p.OtaGet(sha256=package.sha256, offset=0, length=1).encode().replace(
        b'"length":1', f'"length":{p.MAX_OTA_BLOCK + 1}'.encode()))  # over the protocol's limit: the bridge's
    ask(peer, dev, package.sha256, 1024, 1024)
    block = peer.expect(p.ota_data_topic(dev, package.sha256, 1024))
    assert block.payload == catalog.path(package.sha256).read_bytes()[1024:2048]
    wait_for(lambda: served.refusals() == {"unknown": 1, "unassigned": 1, "offset_past_end": 1,
                                           "length_too_large": 1}, what=lambda: str(served.refused))
    assert bridge.refused["malformed"] == 1 and bridge.handler_errors == 0
    wait_for(lambda: served.served == 1, what="the good block counted")
    assert served.served == 1  # nothing was sent for the refused requests
    assert peer.topics() == [p.ota_data_topic(dev, package.sha256, 1024)]


def test_one_device_cannot_queue_more_than_its_share(env: Env, recorder: OtaRecorder, bridge: MqttBridge,
                                                     catalog: Catalog, package: p.ModelRef) -> None:
    release, started = threading.Event(), threading.Semaphore(0)

    def slow_publish(device_id: str, sha256: str, offset: int, data: bytes) -> None:
        started.release()
        release.wait(20)  # a broker that is slow to take the block
        bridge.publish_ota_block(device_id, sha256, offset, data, timeout=10)

    server = ota_server(recorder, catalog, slow_publish, max_in_flight=2, max_block=1024)
    try:
        dev, peer = device(env)
        catalog.assign(dev, package.sha256)
        for i in range(5):
            ask(peer, dev, package.sha256, i * 1024, 1024)
        wait_for(lambda: len(recorder.requested(dev)) == 5, what="5 requests at the handler")
        assert server.refusals() == {"busy": 3} and server.in_flight(dev) == 2
        release.set()
        for offset in (0, 1024):
            peer.expect(p.ota_data_topic(dev, package.sha256, offset))
        wait_for(lambda: server.in_flight(dev) == 0, what="nothing in flight")
        ask(peer, dev, package.sha256, 2048, 1024)  # room again
        peer.expect(p.ota_data_topic(dev, package.sha256, 2048))
        wait_for(lambda: server.served == 3, what="3 blocks counted as served")
    finally:
        release.set()
        server.close()


@pytest.mark.parametrize("ttl", [0.0, 3600.0])
def test_a_yes_from_the_assignment_check_is_remembered_for_its_ttl_only(env: Env, recorder: OtaRecorder,
                                                                        bridge: MqttBridge, catalog: Catalog,
                                                                        package: p.ModelRef, ttl: float) -> None:
    asked: list[tuple[str, str]] = []

    def assigned(device_id: str, sha256: str) -> bool:
        asked.append((device_id, sha256))
        return catalog.assigned(device_id, sha256)

    server = OtaServer(catalog.resolve, assigned, bridge.publish_ota_block, max_block=1024, assigned_ttl_s=ttl)
    recorder.ota = server
    try:
        dev, peer = device(env)
        ask(peer, dev, package.sha256, 0, 1024)  # a no is never remembered: asked again next time
        wait_for(lambda: server.refusals() == {"unassigned": 1}, what=lambda: str(server.refused))
        catalog.assign(dev, package.sha256)
        ask(peer, dev, package.sha256, 0, 1024)
        peer.expect(p.ota_data_topic(dev, package.sha256, 0))
        catalog.assignments.clear()  # the desired twin moved on
        ask(peer, dev, package.sha256, 1024, 1024)
        if ttl:
            peer.expect(p.ota_data_topic(dev, package.sha256, 1024))  # within the TTL: still served
            assert len(asked) == 2
        else:
            wait_for(lambda: server.refusals() == {"unassigned": 2}, what=lambda: str(server.refused))
            assert len(asked) == 3
    finally:
        server.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_by_default_a_device_may_fetch_what_its_stored_desired_twin_names(db, tmp_path: Path) -> None:  # noqa: ANN001
    from datetime import datetime, timezone

    from fleet_server.db import Device
    from fleet_server.fleet import Fleet
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edgefleet.protocol.control import ControlSigner
    from fleet_server.settings import ServerSettings

    sha, other = "a" * 64, "b" * 64
    desired = p.TwinDesired(revision=1, model=p.ModelRef(name="m", version="1", sha256=sha))
    with db.session() as s:
        for device_id, twin in (("cam-1", desired.model_dump(mode="json")), ("cam-2", None)):
            s.add(Device(id=device_id, tags={}, enrolled_at=datetime.now(timezone.utc), cert_serial=device_id,
                         mqtt_password_hash="sha256:00", hardware={}, desired=twin))
    fleet = Fleet(settings=ServerSettings(state_dir=tmp_path), db=db, ca=None, signing_public_key="",
                  control=ControlSigner(Ed25519PrivateKey.generate()), server_broker_password="", admin_key=None,
                  admin_key_created=False)
    assert fleet.ota_assigned("cam-1", sha)
    assert not fleet.ota_assigned("cam-1", other) and not fleet.ota_assigned("cam-2", sha)
    assert not fleet.ota_assigned("nobody", sha)
    with db.session() as s:
        s.get(Device, "cam-1").decommissioned_at = datetime.now(timezone.utc)
    assert not fleet.ota_assigned("cam-1", sha)  # decommissioned
