"""`edgefleet demo` is the newcomer's first contact: it must run end to end, and then what it prints must be all a
person needs: open the address, sign in with the key, watch the agents live, ask one for a snapshot and its logs,
stop one and see the offline alert. Then Ctrl-C stops it cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.fleet_server.dashboard.conftest import browser  # noqa: F401 - the headless Chromium fixture
from tests.fleet_server.dashboard.test_dashboard import text, until
from tests.waiting import wait_for

SERVING = re.compile(r"serving at (http://127\.0\.0\.1:\d+) with admin key (efk_\S+?);")


class DemoRun:
    """The demo in a subprocess, its output collected as it comes."""

    def __init__(self, tmp_path: Path) -> None:
        env = dict(os.environ, EDGEFLEET_STATE_DIR=str(tmp_path / "home"), PYTHONUNBUFFERED="1", COLUMNS="200")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgefleet", "demo", "--duration", "600", "--devices", "2", "--port", "0",
             "--no-train", "--state-dir", str(tmp_path / "demo")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()

    @property
    def out(self) -> str:
        return "".join(self.lines)

    def serving(self) -> tuple[str, str]:
        found = wait_for(lambda: SERVING.search(self.out) or self.proc.poll() is not None, 240,
                         lambda: f"the demo to serve; so far:\n{self.out[-3000:]}")
        assert found is not True, self.out[-3000:]
        return found.group(1), found.group(2)

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(60)


def _sign_in(browser: WebDriver, url: str, key: str) -> None:
    browser.get(url + "/")
    browser.execute_script("sessionStorage.clear(); location.reload()")
    until(browser, lambda b: b.find_elements(By.ID, "login-key"), "the login form")
    browser.find_element(By.ID, "login-key").send_keys(key)
    browser.find_element(By.ID, "login-submit").click()
    until(browser, lambda b: b.find_element(By.ID, "whoami").text.endswith("(admin)"), "signed in")


def _command(browser: WebDriver, name: str) -> None:
    browser.find_element(By.CSS_SELECTOR, f"button[data-command={name}]").click()


def test_the_demo_rolls_out_over_mqtt_and_its_dashboard_shows_and_drives_the_fleet(browser: WebDriver,  # noqa: F811
                                                                                  tmp_path: Path) -> None:
    demo = DemoRun(tmp_path)
    try:
        url, key = demo.serving()
        out = demo.out
        assert "all online over MQTT, no model yet: True" in out
        assert re.search(r"rollout 1: demo-colours 1\.0\.0 -> succeeded", out), out[-3000:]
        assert re.search(r"rollout 2: demo-colours 9\.9\.9-broken -> halted \(canary", out), out[-3000:]
        assert "failed its health check" in out
        assert out.count("demo-colours 1.0.0 │") >= 4  # every device runs the good model, after both rollouts

        _sign_in(browser, url, key)
        until(browser, lambda b: text(b, "#stat-online .value") == "2", "both demo agents online")
        browser.execute_script("location.hash = '#/devices'")
        until(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#device-table tbody tr")) == 2, "two rows")
        # read in the page in one step: rows are redrawn as telemetry streams in
        device = browser.execute_script("return document.querySelector('#device-table tbody tr').dataset.device")
        browser.execute_script(f"location.hash = '#/devices/{device}'")
        until(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "button[data-command=snapshot]"), "command buttons")
        _command(browser, "snapshot")
        until(browser, lambda b: b.execute_script(
            "const i = document.getElementById('snapshot-img'); return i && i.naturalWidth > 0"), "the snapshot")
        _command(browser, "get_logs")
        until(browser, lambda b: "get_logs" in text(b, "#command-output") and "edge_agent" in text(b, "#command-output"),
              "the agent's log lines")
        browser.save_screenshot(str(tmp_path / "demo-device.png"))

        _command(browser, "restart_agent")  # the demo has no service manager: the agent stays stopped
        browser.execute_script("location.hash = '#/alerts'")
        rows = "return [...document.querySelectorAll('#alert-table tbody tr')].map((r) => r.textContent)"
        until(browser, lambda b: any(device in r and "firing" in r and "offline" in r for r in b.execute_script(rows)),
              "the offline alert for the stopped agent")
        browser.save_screenshot(str(tmp_path / "demo-alerts.png"))
    finally:
        code = demo.interrupt()
    assert code == 0, demo.out[-3000:]
    assert "stopping" in demo.out
