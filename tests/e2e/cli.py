"""Drive `edgefleet` the way a user does: real processes, real ports, real state dirs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.services import free_port
from tests.waiting import wait_for

EDGEFLEET = [sys.executable, "-m", "edgefleet"]


def edgefleet(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGEFLEET, *args], env=env, capture_output=True, text=True, timeout=timeout)


@dataclass
class ServerProcess:
    """`edgefleet server run` in a subprocess, on free ports, with its own state dir."""

    root: Path
    broker: str = "embedded"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state_dir(self) -> Path:
        return self.root / "server"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["EDGEFLEET_STATE_DIR"] = str(self.root)
        env["EDGEFLEET_SERVER"] = self.url
        env.pop("EDGEFLEET_API_KEY", None)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start(self) -> "ServerProcess":
        args = ["server", "run", "--port", str(self.port), "--state-dir", str(self.state_dir),
                "--broker", self.broker]
        if self.broker == "embedded":
            args += ["--broker-port", "0"]
        else:  # the machine's Mosquitto lets anonymous clients in: fine for a test, refused by default
            args += ["--insecure-broker"]
        self.log = (self.root / "server.log").open("w")
        self.proc = subprocess.Popen([*EDGEFLEET, *args], env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self._healthy, 60, "the server to answer /healthz")
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, (self.root / "server.log").read_text()
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return edgefleet(*args, env=self.env, timeout=timeout)

    def cli_json(self, *args: str) -> object:
        result = self.cli(*args, "--json", "--state-dir", str(self.state_dir))
        assert result.returncode == 0, result.stderr + result.stdout
        return json.loads(result.stdout)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def start_agent(server: ServerProcess, state_dir: Path) -> subprocess.Popen:
    log = (state_dir.parent / f"{state_dir.name}.log").open("w")
    return subprocess.Popen([*EDGEFLEET, "agent", "run", "--state-dir", str(state_dir)], env=server.env,
                            stdout=log, stderr=subprocess.STDOUT)
