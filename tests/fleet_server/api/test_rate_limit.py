"""Refused enrollment attempts are limited per client address and per token id (429, Retry-After, counted in
/metrics); successful enrollments are not, so a rollout of many devices through one address is not slowed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from fleet_server.api.ratelimit import EnrollLimiter, KeyedBuckets, Source
from fleet_server.app import create_app
from fleet_server.errors import RateLimited
from fleet_server.settings import ServerSettings
from tests.fleet_server.conftest import Api, make_csr

BURST = 5
WRONG_SECRET = "A" * 43


@pytest.fixture()
def limited(settings: ServerSettings) -> Iterator[Api]:
    """The API with a small burst and a refill so slow that no bucket refills during a test."""
    tight = settings.model_copy(update={"enroll_refusal_burst": BURST, "enroll_refusals_per_minute": 0.001})
    with TestClient(create_app(tight, start_mqtt=False)) as client:
        yield Api(client)


def _from(api: Api, host: str) -> TestClient:
    """Another client of the same running app, seen as coming from `host` (no second lifespan: not entered)."""
    return TestClient(api.client.app, client=(host, 40000))


def _enroll(client: TestClient, token: str):  # noqa: ANN202 - httpx.Response
    return client.post("/api/v1/enroll", json={"token": token, "csr": make_csr()[1]})


def _refused(api: Api, kind: str) -> float:
    line = f'edgefleet_http_refused_requests_total{{kind="{kind}"}} '
    return float(next(r for r in api.client.get("/metrics").text.splitlines() if r.startswith(line)).split()[-1])


def _device_count(api: Api) -> int:
    return len(api.client.get("/api/v1/devices", headers=api.headers()).json())


def test_wrong_tokens_from_one_address_get_429_and_then_even_a_good_token_does(limited: Api) -> None:
    good = limited.token()
    attacker = _from(limited, "203.0.113.7")
    codes = [_enroll(attacker, f"eft_{i:012x}.{WRONG_SECRET}").status_code for i in range(BURST + 3)]
    assert codes == [401] * BURST + [429] * 3
    refused = _enroll(attacker, good)  # refused before the token is looked at: a guess cannot even be checked
    assert refused.status_code == 429
    body = refused.json()
    assert body["error"] == "RateLimited" and "203.0.113.7" in body["detail"]
    assert int(refused.headers["retry-after"]) >= 1
    assert _device_count(limited) == 0 and _refused(limited, "enroll_address") == 4

    elsewhere = _from(limited, "198.51.100.20")
    assert _enroll(elsewhere, good).status_code == 200
    assert _device_count(limited) == 1


def test_wrong_secrets_for_one_token_id_from_many_addresses_get_429_for_that_token(limited: Api) -> None:
    good = limited.token(uses=2)
    token_id = good.split(".")[0][len("eft_"):]
    codes = [_enroll(_from(limited, f"192.0.2.{i}"), f"eft_{token_id}.{WRONG_SECRET}").status_code
             for i in range(BURST + 1)]
    assert codes == [401] * BURST + [429]
    r = _enroll(_from(limited, "192.0.2.200"), good)
    assert r.status_code == 429 and token_id in r.json()["detail"]
    assert _refused(limited, "enroll_token") == 2 and _refused(limited, "enroll_address") == 0
    other = limited.token()  # another token is not held back by this one's count
    assert _enroll(_from(limited, "192.0.2.201"), other).status_code == 200


def test_successful_enrollments_from_one_address_are_not_limited(limited: Api) -> None:
    token = limited.token(uses=BURST * 3)
    assert [limited.enroll(token).status_code for _ in range(BURST * 3)] == [200] * (BURST * 3)
    assert _refused(limited, "enroll_address") == 0


def test_ipv6_addresses_are_counted_by_their_64_prefix() -> None:
    assert Source.of("2001:db8:1:2::5", None).address == Source.of("2001:db8:1:2:ffff::9", None).address
    assert Source.of("2001:db8:1:2::5", None).address != Source.of("2001:db8:1:3::5", None).address
    assert Source.of("::ffff:192.0.2.1", None).address == "192.0.2.1"
    assert Source.of("192.0.2.1", "eft_0123456789ab." + WRONG_SECRET).token_id == "0123456789ab"
    assert Source.of("192.0.2.1", "not a token").token_id is None


class _Clock:
    """A clock the test moves by hand, so refills are exact and nothing waits."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_refills_at_its_rate_and_says_how_long_to_wait() -> None:
    clock = _Clock()
    limiter = EnrollLimiter(2, 0.5, clock=clock)
    source = Source("192.0.2.9", None)
    limiter.refused(source)
    limiter.check(source)
    limiter.refused(source)
    with pytest.raises(RateLimited) as refused:
        limiter.check(source)
    assert refused.value.retry_after_s == 2 and refused.value.kind == "enroll_address"
    clock.now += 2.0
    limiter.check(source)  # one whole token back after 1 / 0.5 s


def test_the_set_of_keys_is_bounded() -> None:
    clock = _Clock()
    buckets = KeyedBuckets(1, 0.001, max_keys=3, clock=clock)
    for key in "abcd":
        buckets.take(key)
    assert buckets.wait_s("a") == 0  # the oldest key was dropped and starts full again
    assert buckets.wait_s("d") > 0
