"""The dashboard in a real browser against a real server with simulated devices: signing in keeps the key in the
tab only; a device's fps, twin and status change on the page as they happen, without a reload; a viewer's command
buttons are disabled and say why, and the API refuses it too. Snapshot and offline-alert need the commands and
alerts APIs. Screenshots of each page are saved in the test's tmp_path."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.fleet_server.dashboard.conftest import WAIT_S, Fleet

NO_RELOAD = "window.__edgefleetNoReload"


def sign_in(browser: WebDriver, fleet: Fleet, role: str) -> None:
    """A fresh tab state, then the login form with this role's key."""
    browser.get(fleet.server.url + "/")
    browser.execute_script("sessionStorage.clear(); location.reload()")
    until(browser, lambda b: b.find_elements(By.ID, "login-key"), "the login form")
    browser.find_element(By.ID, "login-key").send_keys(fleet.keys[role])
    browser.find_element(By.ID, "login-submit").click()
    until(browser, lambda b: b.find_element(By.ID, "whoami").text.endswith(f"({role})"), "signed in")
    until(browser, lambda b: b.find_element(By.ID, "live-state").get_attribute("data-state") == "live",
          "the event stream open")


def until(browser: WebDriver, check, what: str):  # noqa: ANN001, ANN201 - a WebDriverWait condition
    """Rows and cards are redrawn as events stream in: an element that went stale mid-check is looked up again."""
    return WebDriverWait(browser, WAIT_S, ignored_exceptions=(StaleElementReferenceException,)).until(
        check, message=f"waited for {what}")


def go(browser: WebDriver, hash_: str, ready_id: str) -> None:
    """Navigate inside the page (no reload) and mark the window, so a reload would be noticed."""
    browser.execute_script(f"location.hash = {hash_!r}; {NO_RELOAD} = true;")
    until(browser, lambda b: b.find_elements(By.ID, ready_id), f"{hash_} to show #{ready_id}")


def not_reloaded(browser: WebDriver) -> bool:
    return browser.execute_script(f"return {NO_RELOAD} === true") is True


def text(browser: WebDriver, css: str) -> str:
    found = browser.find_elements(By.CSS_SELECTOR, css)
    return found[0].text if found else ""


def test_signing_in_shows_the_fleet_and_keeps_the_key_in_this_tab_only(browser: WebDriver, fleet: Fleet,
                                                                      tmp_path: Path) -> None:
    browser.get(fleet.server.url + "/")
    browser.find_element(By.ID, "login-key").send_keys("efk_0123456789ab." + "B" * 43)
    browser.find_element(By.ID, "login-submit").click()
    until(browser, lambda b: "invalid API key" in b.find_element(By.ID, "login-error").text, "the refusal")
    sign_in(browser, fleet, "admin")
    until(browser, lambda b: text(b, "#stat-online .value") == "2", "two devices online")
    assert text(browser, "#stat-offline .value") == "0"
    assert browser.execute_script("return sessionStorage.getItem('edgefleet.apiKey')") == fleet.keys["admin"]
    assert browser.execute_script("return localStorage.length") == 0
    browser.save_screenshot(str(tmp_path / "overview.png"))
    go(browser, "#/devices", "device-table")
    until(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#device-table tbody tr")) == 2, "two rows")
    search = browser.find_element(By.ID, "filter-search")
    search.send_keys(fleet.device_id(1)[:12])
    shown = "return [...document.querySelectorAll('#device-table tbody tr')].map((r) => r.dataset.device)"
    assert browser.execute_script(shown) == [fleet.device_id(1)]
    browser.save_screenshot(str(tmp_path / "devices.png"))
    go(browser, "#/rollouts", "rollouts")
    until(browser, lambda b: "No rollouts yet" in b.find_element(By.ID, "rollouts").text, "the empty rollout list")
    go(browser, "#/alerts", "alerts")
    alerts_api = httpx.get(f"{fleet.api}/alerts", headers=fleet.headers()).status_code == 200
    until(browser, lambda b: (shown := b.find_element(By.ID, "alerts").text) and ("not available" in shown) != alerts_api,
          "the alerts page, or that this server has none")


def test_a_device_page_shows_fps_and_the_twin_change_live(browser: WebDriver, fleet: Fleet, tmp_path: Path) -> None:
    sign_in(browser, fleet, "operator")
    device = fleet.device_id(0)
    go(browser, f"#/devices/{device}", "twin-desired")
    fps = "[data-metric=fps] .value"
    until(browser, lambda b: text(b, fps) not in ("", "—") and float(text(b, fps)) > 3, "fps near 5")
    r = httpx.patch(f"{fleet.api}/devices/{device}/twin", json={"pipeline": {"max_fps": 12}},
                    headers=fleet.headers("operator"))
    assert r.status_code == 200, r.text
    until(browser, lambda b: '"max_fps": 12' in b.find_element(By.ID, "twin-desired").text, "the desired twin")
    until(browser, lambda b: float(text(b, fps)) > 9, "fps near 12")
    points = int(browser.find_element(By.CSS_SELECTOR, "svg.chart[data-metric=fps]").get_attribute("data-points"))
    assert points >= 2
    assert not_reloaded(browser)
    browser.save_screenshot(str(tmp_path / "device.png"))


def test_a_viewer_sees_command_buttons_disabled_with_the_reason(browser: WebDriver, fleet: Fleet,
                                                               tmp_path: Path) -> None:
    sign_in(browser, fleet, "viewer")
    device = fleet.device_id(0)
    go(browser, f"#/devices/{device}", "commands")
    buttons = browser.find_elements(By.CSS_SELECTOR, "#commands button[data-command]")
    assert {b.get_attribute("data-command") for b in buttons} >= {"snapshot", "ping", "get_logs"}
    assert all(not b.is_enabled() for b in buttons)
    reason = browser.find_element(By.ID, "command-reason").text
    assert "viewer" in reason and "operator" in reason
    assert "viewer" in buttons[0].get_attribute("title")
    r = httpx.patch(f"{fleet.api}/devices/{device}/twin", json={"camera": "usb:0"}, headers=fleet.headers("viewer"))
    assert r.status_code == 403
    browser.save_screenshot(str(tmp_path / "viewer.png"))


def test_an_operator_takes_a_snapshot_and_a_viewer_is_refused_by_the_api(browser: WebDriver, fleet: Fleet,
                                                                       tmp_path: Path) -> None:
    device = fleet.device_id(0)
    r = httpx.post(f"{fleet.api}/devices/{device}/commands", json={"name": "ping", "args": {}},
                   headers=fleet.headers("viewer"))
    assert r.status_code == 403 and "operator" in r.json()["detail"]
    sign_in(browser, fleet, "operator")
    go(browser, f"#/devices/{device}", "commands")
    browser.find_element(By.CSS_SELECTOR, "button[data-command=snapshot]").click()
    until(browser, lambda b: b.find_elements(By.ID, "snapshot-img"), "the snapshot")
    assert browser.find_element(By.ID, "snapshot-img").get_attribute("src").startswith("data:image/")
    assert browser.execute_script("return document.getElementById('snapshot-img').naturalWidth") > 0
    browser.find_element(By.CSS_SELECTOR, "button[data-command=ping]").click()
    until(browser, lambda b: "pong" in b.find_element(By.ID, "command-output").text, "the ping reply")
    browser.save_screenshot(str(tmp_path / "snapshot.png"))


def test_a_device_going_offline_shows_offline_live(browser: WebDriver, fleet: Fleet, tmp_path: Path) -> None:
    sign_in(browser, fleet, "viewer")
    go(browser, "#/devices", "device-table")
    gone = fleet.device_id(1)
    row = f"#device-table tr[data-device='{gone}'] .status"
    until(browser, lambda b: text(b, row) == "online", "the device online")
    fleet.devices[1].stop()
    until(browser, lambda b: text(b, row) == "offline", "the device offline")
    go(browser, "#/", "stat-offline")
    until(browser, lambda b: text(b, "#stat-offline .value") == "1", "one device offline")
    assert not_reloaded(browser)
    browser.save_screenshot(str(tmp_path / "offline.png"))


def test_the_offline_device_raises_an_alert_shown_live(browser: WebDriver, fleet: Fleet, tmp_path: Path) -> None:
    gone = fleet.device_id(1)  # stopped by the test before
    assert httpx.get(f"{fleet.api}/alerts", headers=fleet.headers("viewer")).status_code == 200, "no alerts API"
    sign_in(browser, fleet, "viewer")
    go(browser, "#/alerts", "alerts")
    until(browser, lambda b: b.find_elements(By.ID, "alert-table"), "the alert table")
    until(browser, lambda b: any(gone in r.text and "firing" in r.text
                                 for r in b.find_elements(By.CSS_SELECTOR, "#alert-table tbody tr")),
          "a firing alert for the offline device")
    browser.save_screenshot(str(tmp_path / "alerts.png"))
