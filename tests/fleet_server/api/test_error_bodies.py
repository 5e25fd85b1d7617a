"""One error body for every error answer, and an OpenAPI document that says so: each operation lists the
error codes it can answer, all with `ErrorBody`, and FastAPI's `HTTPValidationError` is gone."""

from __future__ import annotations

import pytest

from tests.fleet_server.conftest import Api

V1 = "/api/v1"
AUTH = {401, 403, 413}
EXPECTED_ERRORS: dict[tuple[str, str], set[int]] = {
    ("post", f"{V1}/enroll"): {400, 401, 403, 413, 422, 429},
    ("get", f"{V1}/tokens"): AUTH,
    ("post", f"{V1}/tokens"): AUTH | {400, 422},
    ("get", f"{V1}/devices"): AUTH | {422},
    ("get", f"{V1}/devices/{{device_id}}"): AUTH | {404},
    ("delete", f"{V1}/devices/{{device_id}}"): AUTH | {404, 409},
    ("get", f"{V1}/devices/{{device_id}}/telemetry"): AUTH | {404, 422},
    ("get", f"{V1}/devices/{{device_id}}/twin"): AUTH | {404},
    ("patch", f"{V1}/devices/{{device_id}}/twin"): AUTH | {400, 404, 409, 422},
    ("post", f"{V1}/models"): AUTH | {409, 422},
    ("get", f"{V1}/models"): AUTH | {422},
    ("get", f"{V1}/models/{{name}}/{{version}}"): AUTH | {404},
    ("delete", f"{V1}/models/{{name}}/{{version}}"): AUTH | {404, 409},
    ("post", f"{V1}/devices/{{device_id}}/commands"): AUTH | {404, 409, 422, 503},
    ("get", f"{V1}/devices/{{device_id}}/commands"): AUTH | {404, 422},
    ("get", f"{V1}/devices/{{device_id}}/commands/{{request_id}}"): AUTH | {404, 422},
    ("post", f"{V1}/rollouts"): AUTH | {400, 404, 409, 422},
    ("get", f"{V1}/rollouts"): AUTH | {422},
    ("get", f"{V1}/rollouts/{{rollout_id}}"): AUTH | {404, 422},
    ("post", f"{V1}/rollouts/{{rollout_id}}/pause"): AUTH | {404, 409, 422},
    ("post", f"{V1}/rollouts/{{rollout_id}}/resume"): AUTH | {404, 409, 422},
    ("post", f"{V1}/rollouts/{{rollout_id}}/abort"): AUTH | {404, 409, 422},
    ("get", f"{V1}/alerts"): AUTH | {422},
    ("post", f"{V1}/alerts/{{alert_id}}/ack"): AUTH | {404, 409, 422},
    ("get", f"{V1}/alert-rules"): AUTH,
    ("put", f"{V1}/alert-rules"): AUTH | {400, 422},
    ("get", f"{V1}/apikeys"): AUTH,
    ("post", f"{V1}/apikeys"): AUTH | {400, 422},
    ("delete", f"{V1}/apikeys/{{key_id}}"): AUTH | {404, 409, 422},
    ("get", f"{V1}/audit"): AUTH | {422},
    ("get", f"{V1}/whoami"): AUTH,
    ("post", f"{V1}/events/ticket"): AUTH,
    ("get", f"{V1}/events"): {401, 413, 422},
    ("get", "/healthz"): {413, 503},
    ("get", "/metrics"): {413},
    ("get", "/api/v1/ca"): {413},
}


def _ref(response: dict) -> str:
    return response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")


def test_every_operation_documents_its_error_codes_with_the_one_error_body(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    found: dict[tuple[str, str], set[int]] = {}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            codes = {int(code) for code in operation["responses"] if int(code) >= 400}
            found[(method, path)] = codes
            for code in codes - {503}:
                assert _ref(operation["responses"][str(code)]).endswith("/ErrorBody"), (method, path, code)
    assert found == EXPECTED_ERRORS
    assert "HTTPValidationError" not in str(doc) and "ValidationError" not in doc["components"]["schemas"]
    error_body = doc["components"]["schemas"]["ErrorBody"]
    assert set(error_body["required"]) == {"detail", "error"} and "errors" in error_body["properties"]
    retry = doc["paths"][f"{V1}/enroll"]["post"]["responses"]["429"]["headers"]
    assert "Retry-After" in retry


def test_a_request_validation_error_has_a_readable_detail_and_the_structured_list(api: Api) -> None:
    r = api.client.post(f"{V1}/apikeys", json={"role": "root", "name": "", "extra": 1}, headers=api.headers())
    assert r.status_code == 422
    body = r.json()
    assert isinstance(body["detail"], str) and body["detail"].startswith("invalid request: body.role:")
    assert body["error"] == "RequestValidationError"
    assert {tuple(e["loc"]) for e in body["errors"]} == {("body", "role"), ("body", "name"), ("body", "extra")}
    assert all(set(e) == {"loc", "msg", "type"} for e in body["errors"])  # the input is never echoed back


def test_invalid_json_is_a_422_that_says_why(api: Api) -> None:
    r = api.client.post(f"{V1}/tokens", content=b'{"uses": ',
                        headers={**api.headers(), "content-type": "application/json"})
    assert r.status_code == 422 and "JSON decode error" in r.json()["detail"]
    assert r.json()["errors"][0]["type"] == "json_invalid"


@pytest.mark.parametrize("method,path,code,error", [
    ("GET", f"{V1}/nothing-here", 404, "NotFound"),
    ("PUT", f"{V1}/tokens", 405, "MethodNotAllowed"),
])
def test_the_frameworks_own_errors_carry_the_same_body(api: Api, method: str, path: str, code: int, error: str) -> None:
    r = api.client.request(method, path, headers=api.headers())
    assert r.status_code == code and r.json()["error"] == error and r.json()["detail"]
    if code == 405:
        assert r.headers["allow"]  # the headers of the framework's error survive the new body


def test_a_body_that_is_not_utf8_is_a_400_with_the_error_body(api: Api) -> None:
    r = api.client.post(f"{V1}/tokens", content=b'{"uses": "\xff"}',
                        headers={**api.headers(), "content-type": "application/json"})
    assert r.status_code == 400 and r.json() == {"detail": "There was an error parsing the body", "error": "BadRequest"}


def test_our_own_errors_keep_their_names_and_401_says_how_to_authenticate(api: Api) -> None:
    r = api.client.get(f"{V1}/devices")
    assert r.status_code == 401 and r.json()["error"] == "Unauthorized" and r.headers["www-authenticate"] == "Bearer"
    r = api.client.get(f"{V1}/devices/nope", headers=api.headers())
    assert r.status_code == 404 and r.json() == {"detail": "no device 'nope'", "error": "NotFound"}
