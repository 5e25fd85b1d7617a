"""Size limits on what the API takes: the whole body (413 from the middleware, declared or streamed), and the
fields enrollment stores and hands back in every listing (csr, hardware), and twin patch nesting."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from edgefleet.protocol import EnrollRequest
from edgefleet.protocol.enrollment import CSR_MAX_CHARS, HARDWARE_MAX_BYTES, HARDWARE_MAX_DEPTH
from fleet_server.api.body_limit import DEFAULT_MAX_BODY_BYTES, BodyLimit
from tests.fleet_server.conftest import Api, make_csr


def _devices(api: Api) -> list[dict]:
    r = api.client.get("/api/v1/devices", headers=api.headers())
    assert r.status_code == 200
    return r.json()


def _uses_left(api: Api) -> int:
    return api.client.get("/api/v1/tokens", headers=api.headers()).json()[0]["uses_left"]


def _refused(api: Api, kind: str) -> float:
    text = api.client.get("/metrics").text
    line = f'edgefleet_http_refused_requests_total{{kind="{kind}"}} '
    return float(next(row for row in text.splitlines() if row.startswith(line)).split()[-1])


def _assert_413(r) -> None:  # noqa: ANN001 - httpx.Response
    assert r.status_code == 413, r.text
    body = r.json()
    assert body["error"] == "PayloadTooLarge" and str(DEFAULT_MAX_BODY_BYTES) in body["detail"]


def test_a_50_mb_hardware_field_is_refused_before_it_is_read_and_nothing_is_stored(api: Api) -> None:
    token = api.token()
    big = {"token": token, "csr": make_csr()[1], "hardware": {"blob": "x" * (50 * 1024 * 1024)}}
    _assert_413(api.client.post("/api/v1/enroll", json=big))
    assert _devices(api) == [] and _uses_left(api) == 1
    assert _refused(api, "body_too_large") == 1
    assert api.enroll(token).status_code == 200


def test_a_streamed_body_without_content_length_is_counted_and_refused(api: Api) -> None:
    def body():  # noqa: ANN202 - a generator: httpx sends it chunked, with no Content-Length
        for _ in range(32):
            yield b" " * 65536

    r = api.client.post("/api/v1/tokens", content=body(), headers={**api.headers(), "content-type": "application/json"})
    _assert_413(r)
    assert api.client.get("/api/v1/tokens", headers=api.headers()).json() == []


def test_a_body_under_the_limit_with_padding_is_still_served(api: Api) -> None:
    padded = json.dumps({"uses": 2}) + " " * (DEFAULT_MAX_BODY_BYTES - 100)
    r = api.client.post("/api/v1/tokens", content=padded, headers={**api.headers(), "content-type": "application/json"})
    assert r.status_code == 201, r.text


def test_a_get_with_a_declared_huge_body_is_refused_too(api: Api) -> None:
    r = api.client.request("GET", "/api/v1/devices", content=b"x" * (DEFAULT_MAX_BODY_BYTES + 1), headers=api.headers())
    _assert_413(r)


def test_hardware_over_its_encoded_size_is_422_and_stores_nothing(api: Api) -> None:
    token = api.token()
    r = api.enroll(token, hardware={"cameras": ["/dev/video0"] * (HARDWARE_MAX_BYTES // 10)})
    assert r.status_code == 422 and "hardware" in r.json()["detail"] and "too large" in r.json()["detail"]
    assert _devices(api) == [] and _uses_left(api) == 1


def test_hardware_nested_too_deeply_is_422_where_it_used_to_break_every_listing(api: Api) -> None:
    token = api.token(uses=2)
    deep: dict = {}
    for _ in range(300):  # fits the size limit; pydantic cannot serialise it back (the listing was a 500)
        deep = {"a": deep}
    r = api.enroll(token, hardware=deep)
    assert r.status_code == 422 and "nested too deeply" in r.json()["detail"]
    assert _devices(api) == []
    shallow: dict = {"x": 1}
    for _ in range(HARDWARE_MAX_DEPTH - 1):
        shallow = {"a": shallow}
    assert api.enroll(token, hardware=shallow).status_code == 200
    assert len(_devices(api)) == 1


def test_a_csr_longer_than_any_the_ca_signs_is_422(api: Api) -> None:
    token = api.token()
    r = api.enroll(token, csr="-----BEGIN CERTIFICATE REQUEST-----\n" + "A" * CSR_MAX_CHARS)
    assert r.status_code == 422 and "csr: String should have at most" in r.json()["detail"]
    assert _uses_left(api) == 1


def test_the_agents_own_hardware_facts_fit_the_bounds() -> None:
    from edge_agent.fleet.enroll import hardware_facts

    EnrollRequest(token="eft_0123456789ab." + "A" * 43, csr=make_csr()[1], hardware=hardware_facts())


def test_a_twin_patch_nested_too_deeply_is_422_not_a_server_error(api: Api) -> None:
    device_id = api.enroll(api.token()).json()["device_id"]
    deep = '{"a":' * 300 + "1" + "}" * 300
    r = api.client.patch(f"/api/v1/devices/{device_id}/twin", content='{"properties": {"x": ' + deep + "}}",
                         headers={**api.headers(), "content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"][:2] == ["body", "properties"]


# --------------------------------------------------------------- the middleware's per-route allowance


async def _echo_size(request: Request) -> JSONResponse:
    return JSONResponse({"size": len(await request.body())})


def _limited_app() -> BodyLimit:
    from starlette.applications import Starlette

    app = Starlette(routes=[Route("/small", _echo_size, methods=["POST"]),
                            Route("/upload/model", _echo_size, methods=["POST"])])
    return BodyLimit(app, limit=1000, larger={"/upload": 5000})


def test_the_middleware_stops_reading_a_stream_soon_after_the_limit() -> None:
    """Driven at the ASGI level: the test client would buffer the whole body before the app saw any of it."""
    import anyio

    pulled: list[int] = []
    sent: list[dict] = []

    async def receive() -> dict:
        pulled.append(100)
        return {"type": "http.request", "body": b"x" * 100, "more_body": len(pulled) < 1000}  # 100 kB in all

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/small", "headers": [], "query_string": b"",
             "scheme": "http", "server": ("test", 80), "root_path": "", "http_version": "1.1"}
    anyio.run(_limited_app(), scope, receive, send)
    assert sent[0]["status"] == 413 and json.loads(sent[1]["body"])["error"] == "PayloadTooLarge"
    assert sum(pulled) == 1100  # the chunk that crossed the 1000-byte limit was the last one read


@pytest.mark.parametrize("path,size,status", [
    ("/small", 1000, 200), ("/small", 1001, 413), ("/upload/model", 4000, 200), ("/upload/model", 5001, 413),
])
def test_a_route_prefix_can_be_allowed_a_larger_body(path: str, size: int, status: int) -> None:
    with TestClient(_limited_app()) as client:
        declared = client.post(path, content=b"x" * size)

        def chunks():  # noqa: ANN202 - the same size, streamed without Content-Length
            yield b"x" * size

        streamed = client.post(path, content=chunks())
    assert declared.status_code == streamed.status_code == status
    if status == 200:
        assert declared.json() == streamed.json() == {"size": size}
    else:
        assert streamed.json()["error"] == "PayloadTooLarge"
