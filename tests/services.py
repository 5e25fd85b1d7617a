"""Real services for the tests: the machine's Mosquitto and PostgreSQL when they run, else private ones.

Nothing here mocks a broker or a database. When 127.0.0.1:1883 / :5432 answer, tests use them; when they
do not (a laptop, a bare CI box), a private Mosquitto or PostgreSQL is started from the installed binaries
on a free port and stopped at the end of the session. When neither works, `service_missing` decides: a skip
on a developer's machine, a failure in CI.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NoReturn

import pytest

from tests.waiting import wait_for  # also importable from here, as older tests do


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def wait_port(port: int, timeout: float = 15.0) -> None:
    wait_for(lambda: port_open(port), timeout, f"something to listen on 127.0.0.1:{port}")


def missing_service_fails(env: Mapping[str, str]) -> bool:
    """Whether a missing PostgreSQL or Mosquitto fails the run rather than skipping its tests: in CI (CI=true, as
    CI services set it), where a skip would turn a broken set-up into a green run that tested neither."""
    return env.get("CI", "").strip().lower() in ("true", "1", "yes")


def service_missing(reason: str, env: Mapping[str, str] | None = None) -> NoReturn:
    """Skip the test that needs the service, or, in CI, fail it loudly with the same reason."""
    if missing_service_fails(os.environ if env is None else env):
        pytest.fail(f"{reason} (CI is set: a missing test service is an error, not a skip)", pytrace=False)
    pytest.skip(reason)


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(iter(glob.glob("/usr/sbin/mosquitto")), None)


class Mosquitto:
    """A private Mosquitto process with a config of our choosing (plain, or mTLS for the ACL tests)."""

    def __init__(self, config_lines: list[str], workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.config = workdir / "mosquitto.conf"
        lines = [line.replace("{port}", str(self.port)) for line in config_lines]
        self.config.write_text("\n".join(lines) + "\n")
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Mosquitto":
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.proc = subprocess.Popen([binary, "-c", str(self.config)], stdout=self.log.open("ab"),
                                     stderr=subprocess.STDOUT)
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()


def plain_mosquitto_config(persistence_dir: Path | None = None) -> list[str]:
    lines = ["listener {port} 127.0.0.1", "allow_anonymous true"]
    if persistence_dir is not None:
        lines += ["persistence true", f"persistence_location {persistence_dir}/"]
    if os.geteuid() == 0:
        lines.insert(0, "user root")
    return lines


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


class PrivatePostgres:
    """initdb + pg_ctl on a free port, as a user postgres accepts (it refuses to run as root)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="edgefleet-pg-"))
        self.user = "postgres" if os.geteuid() == 0 else None

    def _run(self, args: list[str]) -> None:
        if self.user:
            shutil.chown(self.dir, self.user)
            args = ["runuser", "-u", self.user, "--", *args]
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> "PrivatePostgres":
        initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if not initdb or not pg_ctl:
            raise RuntimeError("PostgreSQL binaries not found (apt-get install postgresql)")
        data = self.dir / "data"
        self._run([initdb, "-A", "trust", "-U", "postgres", "-D", str(data)])
        self._run([pg_ctl, "-D", str(data), "-o", f"-p {self.port} -k {self.dir} -h 127.0.0.1", "-w",
                   "-l", str(self.dir / "log"), "start"])
        return self

    def stop(self) -> None:
        pg_ctl = _pg_bin("pg_ctl")
        with contextlib.suppress(Exception):
            self._run([pg_ctl, "-D", str(self.dir / "data"), "-m", "immediate", "stop"])
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


def create_scratch_database(admin_url: str) -> tuple[str, Callable[[], None]]:
    """A fresh database per test session, so parallel runs never see each other's rows; `drop` removes it and
    checks it is gone, so a run never leaves databases behind on the machine's PostgreSQL."""
    import sqlalchemy as sa

    name = f"edgefleet_test_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + "/" + name

    def drop() -> None:
        with engine.connect() as conn:
            conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"
            ), {"n": name})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
            left = conn.scalar(sa.text("SELECT count(*) FROM pg_database WHERE datname = :n"), {"n": name})
        engine.dispose()
        assert left == 0, f"scratch database {name} is still there after DROP DATABASE"

    return url, drop
