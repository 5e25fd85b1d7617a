"""Schemathesis against the server's own OpenAPI document, in process (ASGI), on SQLite and PostgreSQL: every
operation, with schema-conforming and with schema-violating data, once with a valid admin key and once with
none. No answer may be a 5xx, every answer must match what the document says (status codes, bodies,
headers; schemathesis' checks, run by `call_and_validate`), and every 4xx must carry the error body with a
non-empty `detail`.

Bounded for a small machine: a few examples per operation and mode, generation without shrinking passes
beyond Hypothesis' own, and no per-example deadline (a slow machine must not fail a correct server); a
request that hangs fails after REQUEST_TIMEOUT_S instead of stalling the suite.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.modes import GenerationMode
from schemathesis.python import asgi

from fleet_server.app import create_app
from fleet_server.settings import ServerSettings
from tests.fleet_server.conftest import make_csr

EXAMPLES_PER_MODE = 4
REQUEST_TIMEOUT_S = 30.0
AUTH_HEADERS = ("authorization", "x-api-key")
# Not checked: "schema-valid data is accepted". Some rules live in validators the schema cannot state (a
# model's sha256 is 64 hex digits, a twin is re-validated after merging, a token must exist), so a
# schema-valid request can rightly get 422/404; the checks that remain still require that answer documented.
CONFIG = {"checks": {"positive_data_acceptance": {"enabled": False}}}
UNAUTHENTICATED = {"GET /healthz", "GET /metrics", "GET /api/v1/ca", "POST /api/v1/enroll"}  # /ca: public by design


@dataclass
class Fuzz:
    schema: Any  # schemathesis' OpenApiSchema
    admin_key: str
    device_id: str  # an enrolled device, so device operations get past 404 too
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    succeeded: set[str] = field(default_factory=set)  # operations that answered 2xx at least once
    cases: int = 0


def _seed_device(app: Any, admin_key: str) -> str:
    with asgi.get_client(app) as client:
        auth = {"Authorization": f"Bearer {admin_key}"}
        token = client.post("/api/v1/tokens", json={}, headers=auth).json()["token"]
        r = client.post("/api/v1/enroll", json={"token": token, "csr": make_csr()[1]})
        assert r.status_code == 200, r.text
        return r.json()["device_id"]


@pytest.fixture()
def fuzz(settings: ServerSettings) -> Iterator[Fuzz]:
    """The app served by schemathesis itself: loading the schema starts its lifespan (database, keys)."""
    # A refusal limit the fuzzer cannot reach: it should get past the limiter to the parsing behind it
    # (test_rate_limit.py covers the limiter itself).
    app = create_app(settings.model_copy(update={"enroll_refusal_burst": 1_000_000}), start_mqtt=False)
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=SchemathesisConfig.from_dict(CONFIG))
        admin_key = app.state.fleet.admin_key
        yield Fuzz(schema=schema, admin_key=admin_key, device_id=_seed_device(app, admin_key))
    finally:
        asgi.shutdown_lifespans()


def _check_error_body(response: Any, label: str) -> None:
    assert response.status_code < 500, f"{label}: {response.status_code} {response.text[:500]}"
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body.get("detail"), str) and body["detail"].strip(), f"{label}: {body}"
        assert isinstance(body.get("error"), str) and body["error"], f"{label}: {body}"


def _fuzz(fuzz: Fuzz, operation: Any, strategy: Any, key: str | None, label: str) -> None:
    @given(case=strategy)
    @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        for name in AUTH_HEADERS:  # generated credentials are noise: the key under test is set below
            case.headers.pop(name, None)
        headers = {"Authorization": f"Bearer {key}"} if key else None
        response = case.call_and_validate(headers=headers, timeout=REQUEST_TIMEOUT_S)
        _check_error_body(response, label)
        fuzz.cases += 1
        fuzz.statuses[response.status_code] += 1
        if response.status_code >= 400:
            fuzz.errors[response.json()["error"]] += 1
        elif response.status_code < 300:
            fuzz.succeeded.add(operation.label)

    run()


def _order(operations: list[Any]) -> list[Any]:
    """Deletions last (they decommission the seeded device), and revoking API keys very last: the fuzzer may
    create admin keys and then revoke the one it is using, after which everything is 401."""
    return sorted(operations, key=lambda op: (op.method.upper() == "DELETE", "/apikeys/" in op.path))


@pytest.mark.parametrize("auth", ["admin", "none"])
def test_every_operation_answers_within_its_schema_and_never_5xx(fuzz: Fuzz, auth: str) -> None:
    operations = _order([result.ok() for result in fuzz.schema.get_all_operations()])
    assert len(operations) >= 15
    key = fuzz.admin_key if auth == "admin" else None
    for operation in operations:
        runs = [("positive", operation.as_strategy(generation_mode=GenerationMode.POSITIVE))]
        if "device_id" in operation.path:
            runs.append(("positive, seeded device", operation.as_strategy(
                generation_mode=GenerationMode.POSITIVE, path_parameters={"device_id": fuzz.device_id})))
        # Without parameters or a body there is nothing to make invalid (Hypothesis: unsatisfiable).
        if operation.path_parameters or operation.query or operation.body:
            runs.append(("negative", operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)))
        for mode, strategy in runs:
            _fuzz(fuzz, operation, strategy, key, f"{auth} {mode} {operation.label}")
    # The numbers in bench/results/security.md (shown with -s).
    print(f"\nschemathesis {auth}: {len(operations)} operations, {fuzz.cases} cases, "
          f"statuses {dict(sorted(fuzz.statuses.items()))}, errors {dict(fuzz.errors.most_common())}")
    if auth == "none":
        assert fuzz.succeeded <= UNAUTHENTICATED
    else:
        assert "PATCH /api/v1/devices/{device_id}/twin" in fuzz.succeeded  # the seeded device was reached
