"""`NatsBroker`: the fleet server's private nats-server, started, fed its users and kept alive.

Synchronous on purpose: the server starts it before its event loop runs and calls `set_devices` from
request handlers through a thread, and a plain lock is enough to keep a reload and a restart from
racing. A watcher thread restarts the process if it dies unexpectedly, with exponential backoff, and
gives up after `max_restarts` restarts within a minute (a broker that crashes at once would otherwise
spin forever); `failure` then says why.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from edgefleet.trust import is_wildcard_host
from fleet_server.nats.binary import find_binary
from fleet_server.nats.config import DEFAULT_MQTT_PORT, NatsConfig, NatsLimits, write_config
from fleet_server.nats.errors import NatsError
from fleet_server.nats.process import NatsProcess
from fleet_server.nats.users import DeviceUser, as_device_users, bcrypt_hash, write_users_file

log = logging.getLogger(__name__)

RESTART_WINDOW_S = 60.0
MAX_BACKOFF_S = 10.0


class NatsBroker:
    def __init__(self, state_dir: Path, host: str = "127.0.0.1", mqtt_port: int = DEFAULT_MQTT_PORT, *,
                 server_password: str, client_port: int = 0, limits: NatsLimits | None = None,
                 binary: Path | None = None, server_name: str = "edgefleet", start_timeout: float = 30.0,
                 reload_timeout: float = 60.0, max_restarts: int = 5,
                 tls: tuple[Path, Path] | None = None) -> None:
        cert, key = tls if tls is not None else (None, None)
        self._cfg = NatsConfig(Path(state_dir).resolve(), host, mqtt_port, client_port, server_name,
                               limits or NatsLimits(), tls_cert=cert, tls_key=key)
        self._server_hash = bcrypt_hash(server_password)
        self._binary_arg = binary
        self._binary: Path | None = None
        self._start_timeout = start_timeout
        self._reload_timeout = reload_timeout
        self._max_restarts = max_restarts
        self._devices: list[DeviceUser] = []
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._proc: NatsProcess | None = None
        self._watcher: threading.Thread | None = None
        self._restart_times: list[float] = []
        self.restarts = 0
        self.failure: NatsError | None = None

    # -- state ----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        proc = self._proc
        return proc is not None and proc.alive

    @property
    def mqtt_port(self) -> int:
        """The MQTT port: the configured one, or after `start` the one picked for port 0 (kept on restarts)."""
        if self._cfg.mqtt_port == 0:
            raise NatsError("MQTT port 0 is picked at start; start the broker first")
        return self._cfg.mqtt_port

    @property
    def host(self) -> str:
        return self._cfg.host

    @property
    def url(self) -> str:
        """Where a client on this machine reaches it: `mqtts://` with TLS, loopback when bound to all
        interfaces (the TLS certificate names 127.0.0.1)."""
        host = "127.0.0.1" if is_wildcard_host(self._cfg.host) else self._cfg.host
        host = f"[{host}]" if ":" in host else host
        return f"{'mqtts' if self._cfg.tls else 'mqtt'}://{host}:{self.mqtt_port}"

    @property
    def client_port(self) -> int | None:
        """The NATS (not MQTT) port of the running process, on the same host; None when not running."""
        proc = self._proc
        return proc.client_port if proc is not None else None

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None else None

    @property
    def log_path(self) -> Path:
        return self._cfg.log_path

    @property
    def store_dir(self) -> Path:
        return self._cfg.store_dir

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> NatsBroker:
        """Spawn nats-server; return once its MQTT port accepts connections (NatsError with the log tail if not)."""
        with self._lock:
            if self._proc is not None:
                raise NatsError("the NATS broker is already started")
            self._binary = find_binary(self._binary_arg)
            write_config(self._cfg)
            write_users_file(self._cfg.users_path, self._server_hash, self._devices)
            self._stopping.clear()
            self.failure = None
            self._spawn_locked()
            self._watcher = threading.Thread(target=self._watch, name="edgefleet-nats-watch", daemon=True)
            self._watcher.start()
            atexit.register(self.stop)
        return self

    def stop(self) -> None:
        """Stop nats-server (no restart follows). Safe to call twice."""
        self._stopping.set()
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                proc.stop()
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(timeout=30)
        atexit.unregister(self.stop)

    def set_devices(self, devices: Iterable[DeviceUser | tuple[str, str]]) -> int:
        """Make exactly these devices able to log in; return once nats-server has applied it.

        Devices not listed any more lose their live connection in the same reload (nats-server re-checks
        every connected client against the new users, which also makes a reload's time grow with the
        devices online: bench/nats_users_bench.py). Before `start`, only records the list."""
        users = as_device_users(devices)
        with self._lock:
            self._devices = users
            proc = self._proc
            if proc is None:  # start() writes the file
                return len(users)
            write_users_file(self._cfg.users_path, self._server_hash, users)
            try:
                proc.reload(self._reload_timeout)
            except NatsError:
                if proc.alive:
                    raise
                log.warning("nats-server died during a reload; restarting it with the new users")
                self._restart_times.append(time.monotonic())
                self._spawn_locked()
                self.restarts += 1
        return len(users)

    # -- internals ------------------------------------------------------------------------------
    def _spawn_locked(self) -> None:
        assert self._binary is not None
        proc = NatsProcess(self._binary, self._cfg)
        port = proc.start(self._start_timeout)
        if self._cfg.mqtt_port != port:  # port 0 picked one: keep it, so clients find us after a restart
            self._cfg = replace(self._cfg, mqtt_port=port)
            write_config(self._cfg)
        self._proc = proc
        log.info("nats-server (pid %s) serves MQTT on %s", proc.pid, self.url)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            proc = self._proc
            if proc is None:
                return
            code = proc.wait()
            if self._stopping.is_set():
                return
            with self._lock:
                if self._proc is not proc:  # set_devices already replaced it
                    continue
            log.warning("nats-server exited unexpectedly (code %s); restarting. Log tail:\n%s",
                        code, proc.log_tail())
            if not self._restart(proc):
                return

    def _restart(self, dead: NatsProcess) -> bool:
        """Respawn with backoff; False once the restart budget is spent (or we are stopping)."""
        while not self._stopping.is_set():
            now = time.monotonic()
            self._restart_times = [t for t in self._restart_times if now - t < RESTART_WINDOW_S]
            if len(self._restart_times) >= self._max_restarts:
                self.failure = NatsError(f"nats-server died {len(self._restart_times)} times within "
                                         f"{RESTART_WINDOW_S:g}s; not restarting it again:\n{dead.log_tail()}")
                log.error("%s", self.failure)
                with self._lock:
                    if self._proc is dead:
                        self._proc = None
                return False
            if self._stopping.wait(min(MAX_BACKOFF_S, 0.25 * 2 ** len(self._restart_times))):
                return False
            with self._lock:
                if self._stopping.is_set() or self._proc is not dead:
                    return not self._stopping.is_set()
                self._restart_times.append(time.monotonic())
                try:
                    self._spawn_locked()
                    self.restarts += 1
                    return True
                except NatsError as exc:
                    log.warning("restarting nats-server failed: %s", exc)
        return False
