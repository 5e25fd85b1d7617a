"""A whole server (API, embedded broker, bridge) with two simulated devices, and a headless Chromium driven by
Selenium, shared by the dashboard's browser tests (one of each per module: starting them is most of the cost).

Chromium comes from the system (Debian's `chromium` and `chromium-driver`); where it is missing the tests skip,
and under CI=true they fail (tests.services.service_missing). The browser is kept off the network: no background
traffic, no component updates, and the pages it loads are served by the test server on 127.0.0.1.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from edge_agent.fleet.sim import SimulatedDevice, enroll_simulated
from fleet_server.server import ServerHandle, start_server_in_thread
from fleet_server.settings import ServerSettings
from tests.services import service_missing
from tests.waiting import wait_for

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver",)
TELEMETRY_S = 0.5
WAIT_S = 20.0
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000"]


def _first(paths: tuple[str, ...], name: str) -> str | None:
    return next((p for p in paths if Path(p).exists()), None) or shutil.which(name)


@dataclass
class Fleet:
    """The running server, its devices and API keys by role."""

    server: ServerHandle
    devices: list[SimulatedDevice]
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return f"{self.server.url}/api/v1"

    def headers(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    def device_id(self, index: int) -> str:
        return self.devices[index].config.device_id


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("dashboard")
    settings = ServerSettings(state_dir=root / "server", port=0, embedded_broker_port=0)
    with start_server_in_thread(settings) as server:
        assert server.fleet.bridge.wait_connected(30), "the server's bridge did not connect"
        admin = {"Authorization": f"Bearer {server.admin_key}"}
        keys = {"admin": server.admin_key}
        for role in ("operator", "viewer"):
            r = httpx.post(f"{server.url}/api/v1/apikeys", json={"role": role, "name": f"{role} in a browser"},
                           headers=admin)
            keys[role] = r.json()["key"]
        token = httpx.post(f"{server.url}/api/v1/tokens", json={"uses": 2, "tags": {"site": "lab"}},
                           headers=admin).json()["token"]
        configs = enroll_simulated(server.url, token, root / "agents", 2, prefix="cam")
        devices = [SimulatedDevice(c.model_copy(update={"telemetry_interval_s": TELEMETRY_S}),
                                   root / "agents" / f"cam-{i:04d}", fps=5).start()
                   for i, c in enumerate(configs)]
        try:
            for device in devices:
                assert device.wait_ready(30)
            fleet = Fleet(server, devices, keys)
            wait_for(lambda: all(httpx.get(f"{fleet.api}/devices/{d.config.device_id}", headers=admin).json()["online"]
                                 for d in devices), WAIT_S, "both devices online")
            yield fleet
        finally:
            for device in devices:
                device.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    chromium, driver_path = _first(CHROMIUM, "chromium"), _first(CHROMEDRIVER, "chromedriver")
    if chromium is None or driver_path is None:
        service_missing("Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        service_missing("selenium is not installed (pip install 'edgefleet[dev]')")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="edgefleet-chromium-")
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
