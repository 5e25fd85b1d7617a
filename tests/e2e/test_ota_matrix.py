"""Over-the-air model updates end to end, each scenario on the embedded broker (nats-server) and on Mosquitto: a
real server (API, rollout scheduler, bridge, OTA server) and simulated devices running the real agent code,
enrolled through the API. Each scenario is one fleet and as few rollouts as its facts need:

- a rollout goes canary first, then wave by wave, and every device ends up reporting the new model healthy,
  through a server restart mid-rollout, a device that was offline and came back, and one enrolled meanwhile;
- a download interrupted by a broker restart, or by kill -9 of the agent process, resumes from its partial
  file: no block the device had recorded is fetched again;
- a flipped byte in the stored package, an unsigned package, a package signed by another key and a model that
  fails its health check each halt the rollout at the canary; a halt sets devices already done back; a
  maintenance window keeps devices outside it on their model;
- bad block requests are refused and counted while serving goes on; a block of the wrong size is asked again.
"""

from __future__ import annotations

from datetime import datetime, timezone

from edgefleet import protocol as p
from edgefleet.protocol import DEFAULT_OTA_BLOCK
from edge_agent.fleet.state import StateDir
from tests.e2e.ota_site import (BLOCK, Site, broker, device_id_of, private_broker,  # noqa: F401
                                private_site, sidecar_blocks, site)
from tests.fleet_server.model_packages import Packer, unsigned
from tests.mqtt_client import Peer
from tests.waiting import wait_for


def devices_of(view: dict) -> dict[str, dict]:
    return {d["device_id"]: {**d, "wave": w["wave"]} for w in view["wave_list"] for d in w["devices"]}


def runs(site: Site, device_id: str, sha256: str) -> dict:
    """The device as the API shows it once it reports this package running, in sync with its desired twin."""
    return wait_for(lambda: (d := site.device(device_id))["in_sync"] and (d["reported"]["model"] or {}).get(
        "sha256") == sha256 and d, 60, lambda: f"{device_id} in sync on {sha256[:12]}: {site.device(device_id)}")


def assert_updated(site: Site, device_id: str, sha256: str) -> None:
    """The device runs this package, and reports that its update to it ended well."""
    device = runs(site, device_id, sha256)
    update = device["reported"]["properties"]["update"]
    assert update == {"sha256": sha256, "state": "succeeded", "reason": None}, update
    assert device["reported"]["last_error"] is None


def test_a_rollout_goes_canary_then_waves_through_a_server_restart_an_offline_device_and_a_late_one(
        site: Site) -> None:
    model = site.publish(site.packer.make("1.0.0", pad=16_000))  # several 4 KiB blocks
    token = site.token(4, site="a")
    configs = site.enroll(token, 3, "a")
    agents = [site.agent(c) for c in configs]
    offline = configs[2].device_id
    agents[2].stop("switched off")
    wait_for(lambda: not site.device(offline)["online"], 30, "the device to be seen offline")

    rid = site.roll("tiny:1.0.0", "tag=site=a", canary_percent=30, waves=2)
    before = site.wait_rollout(rid, lambda v: devices_of(v)[offline]["state"] == "updating",
                               "the offline device's wave to start")
    assert before["state"] == "running" and [len(w["devices"]) for w in before["wave_list"]] == [1, 1, 1]
    site.restart_server()  # the whole server: API, scheduler, bridge (and the embedded broker)
    late = site.enroll(token, 1, "late")[0]  # enrolled after the rollout started, matching its target
    site.agent(late)
    site.agent(configs[2])  # the offline device comes back

    view = site.wait_rollout(rid)
    assert view["state"] == "succeeded" and view["reason"] is None, view
    rows = devices_of(view)
    assert set(rows) == {c.device_id for c in [*configs, late]}
    assert all(r["state"] == "succeeded" for r in rows.values()), rows
    waves = [[r for r in rows.values() if r["wave"] == w] for w in range(3)]
    # planned in id order, and an id starts with the device's name: the offline a-0002 is in the last wave,
    # which the late device joined as the wave then running
    assert len(waves[0]) == 1 and rows[late.device_id]["wave"] == rows[offline]["wave"] == view["current_wave"] == 2
    for earlier, later in zip(waves, waves[1:]):  # each wave started only once the one before was done
        assert max(r["finished_at"] for r in earlier) <= min(r["started_at"] for r in later)
    for device_id in rows:
        assert_updated(site, device_id, model)


def test_a_download_resumes_from_its_partial_file_after_a_broker_restart_and_a_kill_9(
        private_site: Site) -> None:
    site = private_site
    model = site.publish(site.packer.make("1.0.0", pad=1_200_000))  # 5 blocks of the sim command's 256 KiB
    token = site.token(2, site="b")
    agent = site.agent(site.enroll(token, 1, "b")[0], ota_block=65536)
    proc, sim_root = site.sim_process(token)  # `edgefleet sim`: a real agent process, to kill -9
    sim_id = device_id_of(sim_root)
    wait_for(lambda: site.device(sim_id)["online"], 60, "the agent process online")
    hold = 2 * DEFAULT_OTA_BLOCK
    gate = site.hold_blocks(hold)  # the server stalls mid-download
    rid = site.roll("tiny:1.0.0", "tag=site=b", canary_percent=100, waves=1)
    recorded = {agent.config.device_id: (agent.state.root, list(range(hold // 65536))), sim_id: (sim_root, [0, 1])}
    for root, blocks in recorded.values():
        wait_for(lambda: sidecar_blocks(root, model) == blocks, 60, lambda: f"{root.name}'s sidecar to hold {blocks}")

    site.kill(proc)
    assert sidecar_blocks(sim_root, model) == [0, 1]
    site.restart_broker()
    site.sim_process(token)  # the same device, a new process, on the same state dir
    gate.hold_from = None

    view = site.wait_rollout(rid)
    assert view["state"] == "succeeded", view
    for device_id, (root, blocks) in recorded.items():
        assert_updated(site, device_id, model)
        assert StateDir(root).package_path(model).read_bytes() == site.stored(model).read_bytes()
        block = 65536 if root == agent.state.root else DEFAULT_OTA_BLOCK
        served = [offset for dev, offset in gate.published if dev == device_id]
        assert [served.count(i * block) for i in blocks] == [1] * len(blocks), served  # not fetched again
        assert set(served) == set(range(0, site.stored(model).stat().st_size, block))


def test_bad_packages_and_a_failed_health_check_halt_at_the_canary_and_a_window_holds_devices_back(
        site: Site) -> None:
    a = site.agent(site.enroll(site.token(1, site="c"), 1, "c-utc")[0])
    b = site.agent(site.enroll(site.token(1, site="c", tz="Etc/GMT-12"), 1, "c-far")[0])  # UTC+12
    ids = [a.config.device_id, b.config.device_id]
    packer = site.packer
    good = site.publish(packer.make("1.0.0", pad=8_000))

    hour = datetime.now(timezone.utc).hour  # a two-hour window from now, in UTC: b's local hour is 12 hours on
    rid = site.roll("tiny:1.0.0", "tag=site=c", canary_percent=100, window_start_hour=hour,
                    window_end_hour=(hour + 2) % 24)
    view = site.wait_rollout(rid, lambda v: devices_of(v)[a.config.device_id]["state"] == "succeeded",
                             "the device inside the window to switch")
    assert_updated(site, a.config.device_id, good)
    outside = devices_of(view)[b.config.device_id]
    assert outside["state"] == "pending" and outside["reason"] == "waiting for the maintenance window", outside
    assert (site.device(b.config.device_id)["desired"] or {}).get("model") is None and b.last_reported.model is None
    site.api("POST", f"/rollouts/{rid}/abort")
    assert site.wait_rollout(site.roll("tiny:1.0.0", "tag=site=c"))["state"] == "succeeded"  # no window now
    for device_id in ids:
        assert_updated(site, device_id, good)

    flipped = site.publish(packer.make("2.0.0", pad=8_000))
    stored = site.stored(flipped)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01  # the server's copy rots on disk
    stored.write_bytes(bytes(data))
    foreign = Packer.stranger(site.root / "stranger")
    for version, sha, why in [
            ("2.0.0", flipped, "sha256 mismatch"),
            ("3.0.0", site.plant(unsigned(packer.make("3.0.0"), site.root / "unsigned.efpkg")), "signature"),
            ("4.0.0", site.plant(foreign.make("4.0.0")), "not by the trusted key")]:
        view = site.wait_rollout(site.roll(f"tiny:{version}", "tag=site=c", canary_percent=50))
        assert view["state"] == "halted" and "canary: 1 of 1" in view["reason"], view
        canary, other = view["wave_list"][0]["devices"][0], view["wave_list"][1]["devices"][0]
        assert canary["state"] == "failed" and why in canary["reason"], canary
        assert other["state"] == "pending" and other["started_at"] is None
        assert canary["previous_model"]["sha256"] == good
        for device_id in ids:  # nothing unverified ever ran: both still on the good model
            runs(site, device_id, good)
        update = site.device(canary["device_id"])["reported"]["properties"]["update"]
        assert update["sha256"] == sha and update["state"] == "failed" and why in update["reason"], update

    # b now holds any new model to a sample latency no model meets; a's check passes
    site.api("PATCH", f"/devices/{b.config.device_id}/twin", json={"properties": {"health": {"max_latency_ms": 1e-6}}})
    newer = site.publish(packer.make("5.0.0", pad=8_000))
    view = site.wait_rollout(site.roll("tiny:5.0.0", "tag=site=c", canary_percent=100))
    assert view["state"] == "halted" and "canary: 1 of 2" in view["reason"], view
    rows = devices_of(view)
    failed, done = rows[b.config.device_id], rows[a.config.device_id]
    assert failed["state"] == "failed" and failed["reason"].startswith(
        "update rolled back on the device: model tiny 5.0.0 failed its health check: sample latency"), failed
    assert done["state"] == "rolled_back" and done["reason"].startswith("rollout halted: canary"), done
    update = site.device(b.config.device_id)["reported"]["properties"]["update"]
    assert update["sha256"] == newer and update["state"] == "rolled_back" and "health check" in update["reason"]
    for device_id in ids:  # both back on (or still on) the good model, desired and reported
        assert runs(site, device_id, good)["desired"]["model"]["sha256"] == good


def test_bad_block_requests_are_refused_and_counted_and_a_wrong_sized_block_is_asked_again(
        private_site: Site) -> None:
    site = private_site  # the refusal counters are the server's: no other test's devices may add to them
    token = site.token(2, site="d")
    peer_config, agent_config = site.enroll(token, 2, "d")
    model = site.publish(site.packer.make("1.0.0", pad=8_000))
    other = site.publish(site.packer.make("2.0.0"))
    ref = {"name": "tiny", "version": "1.0.0", "sha256": model, "size": site.stored(model).stat().st_size}
    dev = peer_config.device_id
    site.api("PATCH", f"/devices/{dev}/twin", json={"model": ref})  # what the device may fetch
    password = StateDir(site.root / "agents" / peer_config.name).mqtt_password(peer_config)
    peer = Peer(int(peer_config.broker_url.rsplit(":", 1)[1]), dev, peer_config.mqtt_username, password)
    assert not peer.connect().is_failure
    try:
        assert peer.subscribe(f"{p.TOPIC_ROOT}/{dev}/ota/data/#") == [True]

        def ask(sha: str, offset: int, length: int) -> None:
            peer.publish(p.ota_get_topic(dev), p.OtaGet(sha256=sha, offset=offset, length=length).encode())

        ask("f" * 64, 0, BLOCK)  # no such package
        ask(other, 0, BLOCK)  # in the registry, but not this device's
        ask(model, ref["size"], BLOCK)  # the first byte past the end
        peer.publish(p.ota_get_topic(dev), p.OtaGet(sha256=model, offset=0, length=1).encode().replace(
            b'"length":1', f'"length":{p.MAX_OTA_BLOCK + 1}'.encode()))  # over the protocol's largest block
        ask(model, BLOCK, BLOCK)
        block = peer.expect(p.ota_data_topic(dev, model, BLOCK))
        assert block.payload == site.stored(model).read_bytes()[BLOCK:2 * BLOCK]
        ota, bridge = site.handle.fleet.ota, site.handle.fleet.bridge
        wait_for(lambda: ota.refusals() == {"unknown": 1, "unassigned": 1, "offset_past_end": 1},
                 what=lambda: str(ota.refusals()))
        assert bridge.refused["malformed"] == 1 and bridge.handler_errors == 0
        assert peer.topics() == [p.ota_data_topic(dev, model, BLOCK)]  # nothing sent for the refused ones
    finally:
        peer.close()

    gate = site.hold_blocks(10**9)  # holds nothing; records what is sent
    first: list[str] = []
    publish = gate.bridge.publish_ota_block

    def short_first_block(device_id: str, sha256: str, offset: int, data: bytes, **kw: object) -> object:
        if offset == 0 and not first:
            first.append(device_id)
            data = data[:-1]
        return publish(device_id, sha256, offset, data, **kw)

    gate.bridge.publish_ota_block = short_first_block  # type: ignore[method-assign]
    agent = site.agent(agent_config)
    site.api("PATCH", f"/devices/{agent.config.device_id}/twin", json={"model": ref})
    assert_updated(site, agent.config.device_id, model)
    assert agent.ota.refused["wrong_size"] == 1
    assert [o for d, o in gate.published if d == agent.config.device_id].count(0) == 2  # asked again
