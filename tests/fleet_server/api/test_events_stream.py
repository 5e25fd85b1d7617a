"""`GET /api/v1/whoami`, the dashboard's event stream (`POST /events/ticket` then `GET /events?ticket=`) and the
offline `/docs`, on a real server (a stream needs a real HTTP connection). A ticket opens one stream with its
key's role: viewers get camera passwords masked; a used, made-up or missing ticket is refused before any
stream starts; a revoked key's open stream ends; `/docs` loads nothing from another host."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fleet_server.api import docs
from fleet_server.api import events as events_api
from fleet_server.server import ServerHandle, start_server_in_thread
from fleet_server.settings import ServerSettings
from tests.waiting import wait_for

SECRET_CAMERA = "rtsp://cam:hunter2@10.0.0.5/stream"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    settings = ServerSettings(state_dir=tmp_path_factory.mktemp("events") / "server", port=0)
    with start_server_in_thread(settings, start_mqtt=False) as handle:
        yield handle


def key(server: ServerHandle, role: str) -> tuple[int, str]:
    r = httpx.post(f"{server.url}/api/v1/apikeys", json={"role": role, "name": f"{role} stream"},
                   headers=auth(server.admin_key))
    return r.json()["id"], r.json()["key"]


def auth(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def ticket(server: ServerHandle, api_key: str) -> str:
    r = httpx.post(f"{server.url}/api/v1/events/ticket", headers=auth(api_key))
    assert r.status_code == 200, r.text
    assert r.json()["expires_in_s"] > 0
    return r.json()["ticket"]


def sse(response: httpx.Response) -> Iterator[tuple[str, dict]]:
    """(event, data) pairs from an open text/event-stream response; comments (keep-alives) are skipped."""
    event, data = "message", []
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            yield event, json.loads("\n".join(data))
            event, data = "message", []


def test_whoami_tells_each_key_its_role_and_what_it_may_do(server: ServerHandle) -> None:
    assert httpx.get(f"{server.url}/api/v1/whoami").status_code == 401
    for role, operate, admin in [("viewer", False, False), ("operator", True, False), ("admin", True, True)]:
        api_key = server.admin_key if role == "admin" else key(server, role)[1]
        me = httpx.get(f"{server.url}/api/v1/whoami", headers=auth(api_key)).json()
        assert (me["role"], me["can_operate"], me["can_admin"]) == (role, operate, admin)
        assert api_key.startswith(f"efk_{me['prefix']}")


def test_a_ticket_opens_one_stream_with_its_keys_role(server: ServerHandle) -> None:
    _, viewer = key(server, "viewer")
    assert httpx.post(f"{server.url}/api/v1/events/ticket").status_code == 401
    assert httpx.get(f"{server.url}/api/v1/events").status_code == 422
    r = httpx.get(f"{server.url}/api/v1/events", params={"ticket": "made-up"})
    assert r.status_code == 401 and "ticket" in r.json()["detail"]
    streams = {}
    with httpx.Client(timeout=10) as client:
        spent = ticket(server, viewer)
        for role, api_key in [("viewer", viewer), ("admin", server.admin_key)]:
            response = client.send(client.build_request("GET", f"{server.url}/api/v1/events",
                                                        params={"ticket": spent if role == "viewer" else
                                                                ticket(server, api_key)}), stream=True)
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            streams[role] = (response, sse(response))
            assert next(streams[role][1]) == ("hello", {"role": role})
        assert httpx.get(f"{server.url}/api/v1/events", params={"ticket": spent}).status_code == 401  # used
        server.fleet.events.publish("device.reported", {"device_id": "cam-1", "reported": {"camera": SECRET_CAMERA}})
        viewer_event, admin_event = next(streams["viewer"][1]), next(streams["admin"][1])
        assert viewer_event[0] == admin_event[0] == "device.reported"
        assert admin_event[1]["reported"]["camera"] == SECRET_CAMERA
        assert viewer_event[1]["reported"]["camera"] == "rtsp://cam:***@10.0.0.5/stream"
        server.fleet.events.close()  # what a stopping server does: every stream ends
        for response, events in streams.values():
            assert list(events) == []
            response.close()


def test_a_revoked_keys_stream_ends(server: ServerHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_api, "KEY_RECHECK_S", 0.2)
    key_id, operator = key(server, "operator")
    with httpx.stream("GET", f"{server.url}/api/v1/events", params={"ticket": ticket(server, operator)},
                      timeout=10) as response:
        events = sse(response)
        assert next(events)[0] == "hello"
        assert httpx.delete(f"{server.url}/api/v1/apikeys/{key_id}", headers=auth(server.admin_key)).status_code == 200
        assert next(events) == ("expired", {"detail": "the API key was revoked"})
        assert list(events) == []


def test_docs_load_nothing_from_another_host(server: ServerHandle) -> None:
    page = httpx.get(f"{server.url}/docs")
    assert page.status_code == 200
    remote = [u for u in re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)', page.text) if "//" in u]
    assert remote == []
    assert not re.search(r"url:\s*['\"]https?://", page.text)
    assert httpx.get(f"{server.url}/redoc").status_code == 404  # FastAPI's ReDoc page loads from a CDN: off
    assets = docs.swagger_assets()
    if assets is None:  # without swagger-ui-bundle-v2: a plain page that still lists the API
        assert "/api/v1/whoami" in page.text and "/openapi.json" in page.text
        return
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/docs/assets/{name}" in page.text
        asset = httpx.get(f"{server.url}/docs/assets/{name}")
        assert asset.status_code == 200 and len(asset.content) == (Path(assets) / name).stat().st_size


def test_a_client_that_goes_away_leaves_no_subscription_behind(server: ServerHandle) -> None:
    before = server.fleet.events.subscribers
    with httpx.stream("GET", f"{server.url}/api/v1/events", params={"ticket": ticket(server, server.admin_key)},
                      timeout=10) as response:
        events = sse(response)  # held: a dropped reader closes the connection (httpcore closes on GeneratorExit)
        assert next(events)[0] == "hello"
        assert server.fleet.events.subscribers == before + 1

    def gone() -> bool:  # the server learns of it when a write fails: events keep coming, as in a live fleet
        server.fleet.events.publish("device.desired", {"device_id": "cam-1"})
        return server.fleet.events.subscribers == before

    wait_for(gone, 10, "the stream's subscription to end")
