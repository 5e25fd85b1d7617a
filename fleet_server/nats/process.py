"""One nats-server process: spawn it, know when it serves MQTT, reload it, stop it.

The process gets its own session so a Ctrl-C in the server's terminal reaches the fleet server first,
which then stops the broker in order; its stdout/stderr go to the same log file as its own logger, so
errors printed before logging starts (a bad config) end up in the log tail we report.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from fleet_server.nats.config import NatsConfig
from fleet_server.nats.errors import NatsError
from fleet_server.nats.logwatch import CLIENT_LISTEN, MQTT_LISTEN, READY, RELOAD_FAILED, RELOADED, LogFollower, tail


class NatsProcess:
    def __init__(self, binary: Path, cfg: NatsConfig) -> None:
        self.binary = binary
        self.cfg = cfg
        self.proc: subprocess.Popen[bytes] | None = None
        self.mqtt_port: int | None = None
        self.client_port: int | None = None
        self._log = LogFollower(cfg.log_path)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, timeout: float) -> int:
        """Spawn nats-server and return its MQTT port once that port accepts connections."""
        stop_stale(self.cfg)
        self._log.mark()
        with self.cfg.log_path.open("ab") as log:
            self.proc = subprocess.Popen([str(self.binary), "-c", str(self.cfg.config_path)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        try:
            listen = self._log.wait_for(MQTT_LISTEN, timeout, self.proc)
            self.client_port = int(self._log.wait_for(CLIENT_LISTEN, timeout, self.proc).group("port"))
            self._log.wait_for(READY, timeout, self.proc)
            self.mqtt_port = int(listen.group("port"))
            probe(self.cfg.host, self.mqtt_port, timeout)
        except BaseException:
            self.stop()
            raise
        return self.mqtt_port

    def reload(self, timeout: float) -> None:
        """SIGHUP, then wait until nats-server logs that the reload was applied (or why it was refused).
        Once that line is written the new users are live and removed users' connections are closed."""
        if self.proc is None or not self.alive:
            raise NatsError("nats-server is not running")
        self._log.mark()
        self.proc.send_signal(signal.SIGHUP)
        self._log.wait_for(RELOADED, timeout, self.proc, fail=RELOAD_FAILED)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (nats-server flushes JetStream and closes clients), SIGKILL if it hangs; its exit code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        return proc.returncode

    def wait(self) -> int:
        """Block until the process exits (the supervisor's watcher thread sits here)."""
        proc = self.proc
        return proc.wait() if proc is not None else 0

    def log_tail(self) -> str:
        return tail(self.cfg.log_path)


def probe(host: str, port: int, timeout: float) -> None:
    """Wait until a TCP connect to the MQTT port succeeds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host.strip("[]"), port), timeout=1.0):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise NatsError(f"MQTT port {host}:{port} does not accept connections: {exc}") from exc
            time.sleep(0.05)


def stop_stale(cfg: NatsConfig, timeout: float = 10.0) -> None:
    """Stop a nats-server left running on this state directory by a fleet server that died without stopping
    it (it would hold the MQTT port and the JetStream store). Only a process whose command line names our
    config file is touched, so a recycled pid of an unrelated program is left alone."""
    try:
        pid = int(cfg.pid_path.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return
    if str(cfg.config_path).encode() not in cmdline:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _running(pid):
        os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    """True while `pid` runs; an exited process waiting to be reaped (state Z) no longer holds ports."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
