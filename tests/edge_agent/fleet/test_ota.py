"""Model delivery end to end: the server's OtaServer behind a real bridge and a simulated device (the real agent
code) talking over a real broker (the embedded nats-server, and Mosquitto), with real signed packages. A full
download installs; a broker restart or a hard kill of the agent mid-download resumes without fetching again what
the sidecar records; a corrupt, unsigned or foreign-signed package never activates; a wrong block is refused."""

from __future__ import annotations

import json
import secrets
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edgefleet import protocol as p
from edgefleet.backoff import Backoff
from edge_agent.fleet.sim import SimulatedDevice
from edge_agent.fleet.state import StateDir
from fleet_server.mqtt_bridge import MqttBridge
from fleet_server.ota import OtaServer
from tests.edge_agent.conftest import SERVER_CONTROL, PackageMaker, make_config, write_state
from tests.fleet_server.nats_logins import SERVER_USER, NatsLogins, start_nats
from tests.fleet_server.ota_env import Catalog, Gate, OtaRecorder, ota_server
from tests.mqtt_client import TIMEOUT
from tests.waiting import wait_for

BLOCK = 1024


@dataclass
class Setup:
    tmp: Path
    restart_broker: object
    port: int
    logins: NatsLogins | None
    bridge: MqttBridge
    recorder: OtaRecorder
    catalog: Catalog
    gate: Gate
    server: OtaServer
    packages: PackageMaker
    devices: list[SimulatedDevice] = field(default_factory=list)

    def device(self, root: Path | None = None, **options: object) -> SimulatedDevice:
        """A started simulated device trusting the fleet key; ``root`` reuses a state dir (a restarted agent);
        ``options`` go to the agent (OTA timeouts, retries, the update watchdog)."""
        if root is None:
            config = make_config(self.port)
            state = write_state(self.tmp / config.device_id, config)
            if self.logins is not None:
                password = secrets.token_urlsafe(16)
                self.logins.add(config.device_id, password)
                state.save_password(password)
            self.packages.trust(state)
            root = state.root
        else:
            config = StateDir(root).load_config()
        device = SimulatedDevice(config, root, fps=5, ota_block=BLOCK, **{"ota_timeout_s": 3.0, **options}).start()
        self.devices.append(device)
        assert device.wait_ready(TIMEOUT)
        return device

    def desire(self, device: SimulatedDevice, ref: p.ModelRef, revision: int = 1) -> None:
        self.catalog.assign(device.config.device_id, ref.sha256)
        self.bridge.publish_desired(device.config.device_id, p.TwinDesired(revision=revision, model=ref), timeout=10)

    def reported_ota(self, device: SimulatedDevice, state: str, key: str = "ota") -> p.TwinReported:
        """The first twin the device reported over MQTT with ``properties[key].state == state``."""
        def find() -> p.TwinReported | None:
            return next((c[2] for c in self.recorder.of(device.config.device_id) if c[0] == "reported"
                         and c[2].properties.get(key, {}).get("state") == state), None)
        return wait_for(find, 30, lambda: f"{key} state {state}; last reported {device.last_reported}")


@pytest.fixture(params=["embedded", pytest.param("mosquitto", marks=pytest.mark.mosquitto)])
def setup(request: pytest.FixtureRequest, tmp_path: Path, packages: PackageMaker) -> Iterator[Setup]:
    login, logins, broker = {}, None, None
    if request.param == "embedded":
        password, logins = secrets.token_urlsafe(16), NatsLogins()
        broker = start_nats(tmp_path / "nats", password, logins=logins)
        port, login = broker.mqtt_port, {"username": SERVER_USER, "password": password}

        def restart() -> None:
            broker.stop()
            start_nats(tmp_path / "nats", password, port=port, logins=logins)
    else:
        mosquitto = request.getfixturevalue("private_mosquitto")()
        port, restart = mosquitto.port, mosquitto.restart
    recorder, catalog = OtaRecorder(), Catalog(tmp_path / "server-packages")
    bridge = MqttBridge(f"mqtt://127.0.0.1:{port}", recorder, client_id=f"ota-server-{secrets.token_hex(3)}",
                        shared_telemetry=False, signer=SERVER_CONTROL, **login)
    bridge.start()
    assert bridge.wait_connected(TIMEOUT)
    gate = Gate(bridge)
    s = Setup(tmp_path, restart, port, logins, bridge, recorder, catalog, gate, ota_server(recorder, catalog, gate),
              packages)
    try:
        yield s
    finally:
        for device in s.devices:
            device.stop()
        s.server.close()
        bridge.stop()
        if logins is not None:
            logins.broker.stop()


def offsets(total: int) -> list[int]:
    return list(range(0, total, BLOCK))


def sidecar(device: SimulatedDevice, sha256: str) -> list[int]:
    path = device.state.packages_dir / f"{sha256}.partial.json"
    try:
        return json.loads(path.read_text())["done"]
    except (OSError, ValueError, KeyError):
        return []


def test_a_desired_model_is_downloaded_verified_and_installed(setup: Setup) -> None:
    ref = setup.catalog.add(setup.packages.make("1.0"))
    device = setup.device()
    setup.desire(device, ref)
    reported = setup.reported_ota(device, "installed")
    assert reported.model is not None and reported.model.sha256 == ref.sha256 and reported.last_error is None
    assert reported.properties["ota"] == {"sha256": ref.sha256, "state": "installed", "bytes": ref.size,
                                          "total": ref.size, "percent": 100.0, "error": None}
    assert device.slots.active().package_sha256 == ref.sha256
    cached = device.state.package_path(ref.sha256)
    assert cached.read_bytes() == setup.catalog.path(ref.sha256).read_bytes()
    assert sorted(x.name for x in device.state.packages_dir.iterdir()) == [cached.name]  # no partial, no sidecar
    assert sorted(setup.recorder.requested(device.config.device_id)) == offsets(ref.size)  # each block once
    runs = [c[2] for c in setup.recorder.of(device.config.device_id) if c[0] == "ota_get"]
    assert len(runs) < len(offsets(ref.size)) and max(r.count for r in runs) > 1  # asked for in runs of blocks


@pytest.mark.parametrize("interruption", ["broker_restart", "agent_killed"])
def test_a_download_resumes_where_it_was(setup: Setup, interruption: str) -> None:
    ref = setup.catalog.add(setup.packages.make("1.0"))
    assert ref.size > 6 * BLOCK
    device = setup.device()
    setup.gate.hold_from = 4 * BLOCK  # the first four blocks come, then the server stalls
    setup.desire(device, ref)
    setup.gate.wait_held()
    wait_for(lambda: sidecar(device, ref.sha256) == [0, 1, 2, 3], what="the sidecar to record blocks 0-3")
    if interruption == "broker_restart":
        setup.restart_broker()
    else:
        device.link.kill()  # as kill -9: no goodbye, nothing saved on the way out
        root = device.state.root
        assert sidecar(device, ref.sha256) == [0, 1, 2, 3]
        device = setup.device(root)  # a new agent process on the same state dir
    setup.gate.hold_from = None
    reported = setup.reported_ota(device, "installed")
    assert reported.model.sha256 == ref.sha256
    assert device.state.package_path(ref.sha256).read_bytes() == setup.catalog.path(ref.sha256).read_bytes()
    asked = setup.recorder.requested(device.config.device_id)
    assert [asked.count(o) for o in offsets(4 * BLOCK)] == [1, 1, 1, 1]  # what the sidecar held was not fetched again
    assert set(asked) == set(offsets(ref.size))


def test_a_corrupted_package_is_refused_at_verification_and_nothing_activates(setup: Setup) -> None:
    ref = setup.catalog.add(setup.packages.make("1.0"))
    served = setup.catalog.path(ref.sha256)
    data = bytearray(served.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the file the server delivers
    served.write_bytes(bytes(data))
    device = setup.device()
    setup.desire(device, ref)
    reported = setup.reported_ota(device, "failed")
    assert reported.properties["ota"]["error"].startswith("verification failed: sha256 mismatch")
    assert reported.model is None and device.slots.active() is None
    assert "sha256 mismatch" in (device.last_reported.last_error or "")
    assert list(device.state.packages_dir.iterdir()) == []  # the bad bytes were removed, not cached


def _unsigned(package: Path, out: Path) -> Path:
    """The same package without its signature member."""
    with tarfile.open(package) as src, tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as dst:
        for member in src.getmembers():
            if member.name != "signature":
                dst.addfile(member, src.extractfile(member))
    return out


@pytest.mark.parametrize("kind", ["unsigned", "foreign_key"])
def test_an_unsigned_or_foreign_signed_package_is_downloaded_but_never_activated(setup: Setup, kind: str) -> None:
    if kind == "unsigned":
        package = _unsigned(setup.packages.make("1.0"), setup.tmp / "unsigned.efpkg")
    else:
        package = PackageMaker(setup.tmp / "other-key").make("1.0")
    ref = setup.catalog.add(package)
    device = setup.device()
    setup.desire(device, ref)
    reported = setup.reported_ota(device, "failed")
    assert "refused model package" in reported.properties["ota"]["error"]
    assert ("signature" if kind == "unsigned" else "not by the trusted key") in reported.properties["ota"]["error"]
    assert reported.model is None and device.slots.active() is None


def test_a_block_of_the_wrong_size_or_offset_is_refused_and_asked_again(setup: Setup) -> None:
    ref = setup.catalog.add(setup.packages.make("1.0"))
    device = setup.device()
    sha, dev = ref.sha256, device.config.device_id
    original = setup.gate.bridge.publish_ota_block
    truncated: list[int] = []

    def first_block_short(device_id: str, sha256: str, offset: int, data: bytes, **kw: object) -> object:
        if offset == 0 and not truncated:
            truncated.append(offset)
            data = data[:-1]
        return original(device_id, sha256, offset, data, **kw)

    setup.gate.bridge.publish_ota_block = first_block_short  # type: ignore[method-assign]
    setup.desire(device, ref)
    setup.reported_ota(device, "installed")
    assert device.ota.refused["wrong_size"] == 1
    assert setup.recorder.requested(dev).count(0) == 2  # asked again after the short one
    original(dev, sha, 1, b"x" * BLOCK, timeout=10)  # an offset never asked for
    wait_for(lambda: device.ota.refused["unexpected"] == 1, what="the unexpected block refused")
    assert device.slots.active().package_sha256 == sha


def test_a_server_that_never_answers_ends_the_update_failed_after_bounded_retries(setup: Setup) -> None:
    ref = setup.catalog.add(setup.packages.make("1.0"))
    device = setup.device(ota_timeout_s=0.3, ota_window=1,
                          ota_retry=Backoff(initial_delay_s=0.05, max_delay_s=0.1, jitter=0.0, max_attempts=3))
    setup.gate.hold_from = 0  # every block request is taken and never answered
    setup.desire(device, ref)
    reported = setup.reported_ota(device, "failed", key="update")
    why = "block at offset 0 did not arrive intact after 3 attempts"
    assert reported.properties["update"] == {"sha256": ref.sha256, "state": "failed",
                                             "reason": f"delivery failed: {why}"}
    assert reported.properties["ota"]["state"] == "failed" and reported.properties["ota"]["error"] == why
    assert reported.model is None and why in reported.last_error
    assert setup.recorder.requested(device.config.device_id) == [0, 0, 0]  # three attempts, then no more


def test_the_watchdog_times_out_a_stalled_download_and_a_new_revision_resumes_it(setup: Setup) -> None:
    ref = setup.catalog.add(setup.packages.make("1.0"))
    device = setup.device(ota_timeout_s=600.0, update_stall_s=2.0)  # no block retry comes before the watchdog
    setup.gate.hold_from = 2 * BLOCK
    setup.desire(device, ref)
    reported = setup.reported_ota(device, "timed_out", key="update")
    assert reported.properties["update"]["reason"].startswith("no progress in download for ")
    assert f"model update {ref.sha256[:12]} timed out" in reported.last_error
    failed = setup.reported_ota(device, "failed")  # the download itself was stopped, with the reason
    assert failed.properties["ota"]["error"].startswith("timed out: no progress in download")
    assert failed.properties["update"]["state"] == "timed_out"  # the final state stays timed_out
    assert device.watchdog.fired == 1 and device.slots.active() is None
    wait_for(lambda: sidecar(device, ref.sha256) == [0, 1], what="the blocks that came kept for a resume")

    setup.gate.hold_from = None
    setup.desire(device, ref, revision=2)  # a later desired twin tries again, and resumes
    reported = setup.reported_ota(device, "succeeded", key="update")
    assert reported.model.sha256 == ref.sha256 and device.slots.active().package_sha256 == ref.sha256
    asked = setup.recorder.requested(device.config.device_id)
    assert asked.count(0) == 1 and asked.count(BLOCK) == 1 and set(asked) == set(offsets(ref.size))


def test_a_lost_block_is_asked_again_once_blocks_stop_coming_and_no_other_is(setup: Setup) -> None:
    ref = setup.catalog.add(setup.packages.make("1.0"))
    device = setup.device()
    original = setup.gate.bridge.publish_ota_block
    dropped: list[int] = []

    def second_block_lost(device_id: str, sha256: str, offset: int, data: bytes, **kw: object) -> object:
        if offset == BLOCK and not dropped:
            dropped.append(offset)
            return None  # never sent: as if the request or the block were lost on the way
        return original(device_id, sha256, offset, data, **kw)

    setup.gate.bridge.publish_ota_block = second_block_lost  # type: ignore[method-assign]
    setup.desire(device, ref)
    setup.reported_ota(device, "installed")
    requested = setup.recorder.requested(device.config.device_id)
    assert dropped == [BLOCK] and requested.count(BLOCK) == 2
    assert sorted(set(requested)) == offsets(ref.size) and len(requested) == len(offsets(ref.size)) + 1
    assert device.ota.refused == {}  # nothing arrived twice
