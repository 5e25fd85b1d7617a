"""Model delivery cost: one package to N devices over Mosquitto, the OTA way (fleet_server.ota + the agent's
edge_agent.fleet.ota downloader, each device on its own MQTT connection: requests, a window of blocks, writes
at offsets with a durable sidecar, the final sha256 check) against the same bytes sent as a plain paho
publish/subscribe transfer (the server pushes every block at QoS 1, devices write them at their offsets),
measured in the same run, same broker, same block size and the same number of publishing threads.

    .venv/bin/python bench/ota_bench.py [--devices 100] [--size-mb 10] [--port 1883] [--repeat 3]

Each repeat runs the plain transfer and then the OTA one, back to back, on fresh device identities; the ratio
reported is the median of the repeats' ratios (each pair shares whatever else the machine was doing then), and
every pair is kept in the JSON.

Needs Mosquitto on 127.0.0.1:PORT. Writes bench/results/ota.json and bench/results/ota.md. Target: OTA time
at most 1.5x the plain transfer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import queue
import secrets
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgefleet import protocol as p  # noqa: E402
from edge_agent.fleet.mqtt_client import BrokerSettings, MqttLink  # noqa: E402
from edge_agent.fleet.ota import DEFAULT_WINDOW, OtaDownloader  # noqa: E402
from fleet_server.mqtt_bridge import MqttBridge  # noqa: E402
from fleet_server.ota import OtaServer  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BLOCK = p.DEFAULT_OTA_BLOCK
WORKERS = 8
TAG = f"bench{secrets.token_hex(3)}"
NOTES_MARKER = "<!-- notes: kept across runs -->"


class OtaHandler:
    """The bridge's handler: only block requests matter here."""

    def __init__(self) -> None:
        self.ota: OtaServer | None = None

    def on_ota_get(self, device_id: str, request: p.OtaGet) -> None:
        self.ota.handle(device_id, request)

    def __getattr__(self, name: str):  # noqa: ANN204 - status, telemetry, ...: ignored
        return lambda *args: None


class Downloader:
    """One simulated device: the agent's own MQTT link and downloader, blocks handled on a worker thread."""

    def __init__(self, device_id: str, port: int, root: Path, done: threading.Semaphore) -> None:
        self.inbox: queue.Queue = queue.Queue()
        self.finished = threading.Event()
        self.failed: str | None = None
        self.link = MqttLink(device_id, BrokerSettings.from_url(f"mqtt://127.0.0.1:{port}"), agent_version="bench",
                             on_message=lambda t, m: self.inbox.put((t, m)), on_reject=lambda t, r: None)
        self.ota = OtaDownloader(device_id, root / device_id, publish=lambda t, b: self.link.publish(t, b, qos=1),
                                 ready=self.link.subscribed.is_set, on_progress=self._progress,
                                 on_complete=lambda sha: (self.finished.set(), done.release()), timeout_s=30.0)
        self._done = done
        threading.Thread(target=self._work, daemon=True).start()

    def _progress(self, status: dict) -> None:
        if status["state"] == "failed" and self.failed is None:
            self.failed = status["error"]
            self._done.release()

    def _work(self) -> None:
        while (item := self.inbox.get()) is not None:
            topic, message = item
            if topic.kind is p.TopicKind.OTA_DATA:
                self.ota.on_block(topic.sha256, topic.offset, message)

    def stop(self) -> None:
        self.inbox.put(None)
        self.ota.stop()
        self.link.stop()


def run_ota(devices: list[str], port: int, package: Path, ref: p.ModelRef, root: Path) -> dict:
    handler = OtaHandler()
    bridge = MqttBridge(f"mqtt://127.0.0.1:{port}", handler, client_id=f"{TAG}-server", shared_telemetry=False,
                        share_group=TAG)
    bridge.start()
    assert bridge.wait_connected(10), "the bridge did not connect"
    server = OtaServer(lambda sha: package if sha == ref.sha256 else None, lambda d, s: True,
                       lambda d, s, o, b: bridge.publish_ota_block(d, s, o, b, timeout=60), workers=WORKERS)
    handler.ota = server
    done = threading.Semaphore(0)
    downloaders = [Downloader(d, port, root, done) for d in devices]
    try:
        for dl in downloaders:
            dl.link.start()
        for dl in downloaders:
            assert dl.link.subscribed.wait(30), "a device did not subscribe"
        start, cpu = time.perf_counter(), time.process_time()
        for dl in downloaders:
            dl.ota.start().want(ref, 1)
        for _ in downloaders:
            done.acquire(timeout=600)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        failed = [dl.failed for dl in downloaders if dl.failed]
        ok = sum(dl.finished.is_set() for dl in downloaders)
        return {"seconds": round(elapsed, 2), "cpu_seconds": round(cpu, 2), "completed": ok, "failed": failed[:3],
                "requests": sum(dl.ota.requests for dl in downloaders), "refused_by_server": dict(server.refused),
                "refused_by_devices": sum(sum(dl.ota.refused.values()) for dl in downloaders)}
    finally:
        for dl in downloaders:
            dl.stop()
        for d in devices:  # their retained status: the machine's broker is shared
            bridge.clear_device(d, timeout=10)
        server.close()
        bridge.stop()


def run_plain(devices: list[str], port: int, package: Path, root: Path) -> dict:
    """Push every block to every device at QoS 1 from WORKERS threads; devices write them at their offsets."""
    size = package.stat().st_size
    blocks = -(-size // BLOCK)
    done = threading.Semaphore(0)
    receivers = []
    for d in devices:
        path = root / f"{d}.plain"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        got = {"n": 0}

        def on_message(_c, _u, msg, fd=fd, got=got) -> None:  # noqa: ANN001
            os.pwrite(fd, msg.payload, int(msg.topic.rsplit("/", 1)[1]))
            got["n"] += 1
            if got["n"] == blocks:
                done.release()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{d}-plain", protocol=mqtt.MQTTv311)
        client.on_message = on_message
        client.connect("127.0.0.1", port)
        client.subscribe(f"{TAG}/plain/{d}/#", qos=1)
        client.loop_start()
        receivers.append((client, fd))
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{TAG}-plain-server", protocol=mqtt.MQTTv311)
    sender.connect("127.0.0.1", port)
    sender.loop_start()
    time.sleep(1.0)  # let every SUBACK land: the bench, unlike the tests, may wait a fixed time

    def send(job: tuple[str, int]) -> None:
        d, offset = job
        with open(package, "rb") as fh:
            fh.seek(offset)
            data = fh.read(BLOCK)
        sender.publish(f"{TAG}/plain/{d}/{offset}", data, qos=1).wait_for_publish(60)
    try:
        start, cpu = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(send, [(d, i * BLOCK) for i in range(blocks) for d in devices]))
        for _ in devices:
            done.acquire(timeout=600)
        return {"seconds": round(time.perf_counter() - start, 2), "cpu_seconds": round(time.process_time() - cpu, 2)}
    finally:
        sender.disconnect()
        sender.loop_stop()
        for client, fd in receivers:
            client.disconnect()
            client.loop_stop()
            os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--size-mb", type=float, default=10.0)
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = []
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="ota-bench-") as tmp:
        root = Path(tmp)
        package = root / "package.efpkg"
        package.write_bytes(os.urandom(int(args.size_mb * 1024 * 1024)))
        sha = hashlib.sha256(package.read_bytes()).hexdigest()
        ref = p.ModelRef(name="bench", version="1", sha256=sha, size=package.stat().st_size)
        for r in range(args.repeat):
            devices = [f"{TAG}r{r}-{i:04d}" for i in range(args.devices)]
            (root / f"plain{r}").mkdir()
            (root / f"ota{r}").mkdir()
            plain = run_plain(devices, args.port, package, root / f"plain{r}")
            ota = run_ota(devices, args.port, package, ref, root / f"ota{r}")
            runs.append({"plain": plain, "ota": ota, "ratio": round(ota["seconds"] / plain["seconds"], 2)})
            print(json.dumps(runs[-1]), flush=True)
    median = sorted(runs, key=lambda run: run["ratio"])[len(runs) // 2]
    plain, ota, ratio = median["plain"], median["ota"], median["ratio"]
    total_mb = args.size_mb * args.devices
    result = {"devices": args.devices, "package_mb": args.size_mb, "block_bytes": BLOCK, "window": DEFAULT_WINDOW,
              "server_workers": WORKERS, "plain": plain, "ota": ota, "ratio": ratio, "target_ratio": 1.5,
              "met": ratio <= 1.5 and all(run["ota"]["completed"] == args.devices for run in runs),
              "runs": runs, "load_before": load_before, "load_after": [round(x, 2) for x in os.getloadavg()],
              "plain_mb_s": round(total_mb / plain["seconds"], 1), "ota_mb_s": round(total_mb / ota["seconds"], 1),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ota.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "ota.md").write_text(render(result) + kept_notes(RESULTS / "ota.md"))
    print(json.dumps(result, indent=2))


def kept_notes(path: Path) -> str:
    """What follows the notes marker in the previous results (the hand-written history of changes) is kept."""
    try:
        text = path.read_text()
    except OSError:
        return ""
    at = text.find(NOTES_MARKER)
    return "\n" + text[at:] if at >= 0 else ""


def render(r: dict) -> str:
    return f"""# OTA delivery benchmark (bench/ota_bench.py)

One {r['package_mb']:g} MB package to {r['devices']} simulated devices in one process over Mosquitto
(127.0.0.1), {r['block_bytes'] // 1024} KiB blocks, {r['window']} blocks in flight per device (asked for in
runs of {r['window'] // 2} consecutive blocks per request), {r['server_workers']} server threads; the plain
transfer pushes the same blocks at QoS 1 from as many threads.
Machine: {r['machine']['cpus']} CPUs, Python {r['machine']['python']}. {len(r['runs'])} repeats, each the plain
transfer then the OTA one; the row below is the repeat with the median ratio.

| transfer | time | throughput | CPU (all threads) |
|---|---|---|---|
| plain paho publish/subscribe | {r['plain']['seconds']} s | {r['plain_mb_s']} MB/s | {r['plain']['cpu_seconds']} s |
| OTA (requests, checkpointed sidecar, sha256 check) | {r['ota']['seconds']} s | {r['ota_mb_s']} MB/s | \
{r['ota']['cpu_seconds']} s |

OTA / plain = **{r['ratio']}x** (target <= {r['target_ratio']}x: {'met' if r['met'] else 'NOT met'}); every
repeat: {', '.join(f"{run['ratio']}x ({run['ota']['seconds']} s / {run['plain']['seconds']} s)" for run in r['runs'])}.
Load average before and after: {r['load_before']} / {r['load_after']} (a shared machine: the ratio of each pair is
what counts, and CPU seconds vary less with load than wall time). Completed {r['ota']['completed']} of
{r['devices']}; {r['ota']['requests']} block requests; refused by the
server: {r['ota']['refused_by_server'] or 'none'}; by devices: {r['ota']['refused_by_devices']}.
"""


if __name__ == "__main__":
    main()
