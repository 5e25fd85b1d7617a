"""The login and topic rules on their own, as a table (the broker tests below prove amqtt applies them)."""

from __future__ import annotations

import pytest
from amqtt.contexts import Action

from fleet_server.broker.auth import CredentialChecker, allowed, refusal_reason
from tests.fleet_server.broker.credentials import StaticCredentials

CREDS = StaticCredentials("server", "s3cret", {"dev-a": "pa", "dev-b": "pb"})
SUB, PUB, RECV = Action.SUBSCRIBE, Action.PUBLISH, Action.RECEIVE


def test_static_credentials_is_a_credential_checker() -> None:
    assert isinstance(CREDS, CredentialChecker)


@pytest.mark.parametrize(("client_id", "user", "password", "refused_because"), [
    ("dev-a", "dev-a", "pa", None),
    ("edgefleet-server-1", "server", "s3cret", None),  # the server may use any client id
    ("dev-a", None, None, "anonymous"),
    ("dev-a", "dev-a", "", "anonymous"),
    ("dev-a", "dev-a", "pb", "bad credentials"),
    ("dev-a", "nobody", "pa", "bad credentials"),
    ("dev-b", "dev-a", "pa", "client id 'dev-b' is not the username 'dev-a'"),
    ("dev-a", "server", "wrong", "bad credentials"),
    ("dev-a", b"dev-a", b"pa", None),  # amqtt may hand over bytes
])
def test_login_rule(client_id: str, user: str | None, password: str | None, refused_because: str | None) -> None:
    reason = refusal_reason(CREDS, client_id, user, password)
    if refused_because is None:
        assert reason is None
    else:
        assert reason is not None and refused_because in reason


def test_a_last_will_outside_the_devices_subtree_is_refused() -> None:
    assert refusal_reason(CREDS, "dev-a", "dev-a", "pa", "edgefleet/v1/dev-a/status") is None
    assert "Last Will" in refusal_reason(CREDS, "dev-a", "dev-a", "pa", "edgefleet/v1/dev-b/status")
    assert "Last Will" in refusal_reason(CREDS, "dev-a", "dev-a", "pa", "edgefleet/v1/+/status")


def test_a_checker_that_raises_refuses_the_login() -> None:
    class Broken:
        def check(self, username: str, password: str) -> bool:
            raise RuntimeError("database down")

        def is_server(self, username: str) -> bool:
            return False

    assert refusal_reason(Broken(), "dev-a", "dev-a", "pa") == "credential check failed"


def test_revoked_device_is_refused() -> None:
    creds = StaticCredentials("server", "s", {"dev-c": "pc"})
    assert refusal_reason(creds, "dev-c", "dev-c", "pc") is None
    creds.revoke("dev-c")
    assert "bad credentials" in refusal_reason(creds, "dev-c", "dev-c", "pc")


@pytest.mark.parametrize(("user", "topic", "action", "ok"), [
    ("dev-a", "edgefleet/v1/dev-a/status", PUB, True),
    ("dev-a", "edgefleet/v1/dev-a/twin/desired", SUB, True),
    ("dev-a", "edgefleet/v1/dev-a/cmd/+", SUB, True),
    ("dev-a", "edgefleet/v1/dev-a/ota/data/#", SUB, True),
    ("dev-a", "edgefleet/v1/dev-a/#", SUB, True),
    ("dev-a", "edgefleet/v1/dev-a/cmd/r1", RECV, True),
    ("dev-a", "edgefleet/v1/dev-b/status", PUB, False),
    ("dev-a", "edgefleet/v1/dev-b/twin/desired", SUB, False),
    ("dev-a", "edgefleet/v1/dev-b/cmd/r1", RECV, False),
    ("dev-a", "edgefleet/v1/+/telemetry", SUB, False),  # a wildcard across devices
    ("dev-a", "edgefleet/v1/#", SUB, False),
    ("dev-a", "#", SUB, False),
    ("dev-a", "+/v1/dev-a/status", SUB, False),
    ("dev-a", "edgefleet/v1/dev-a", PUB, False),  # the prefix itself is not under it
    ("dev-a", "edgefleet/v1/dev-a/", PUB, False),
    ("dev-a", "edgefleet/v1/dev-ab/status", PUB, False),  # a longer id sharing the prefix
    ("dev-a", "$share/g/edgefleet/v1/dev-a/status", SUB, False),
    ("dev-a", "$SYS/broker/uptime", SUB, False),
    ("Not/Valid", "edgefleet/v1/Not/Valid/x", PUB, False),
    ("server", "edgefleet/v1/+/telemetry", SUB, True),
    ("server", "edgefleet/v1/dev-b/twin/desired", PUB, True),
    ("server", "edgefleet/v1/dev-b/events", RECV, True),
    ("server", "$share/fleet/edgefleet/v1/+/telemetry", SUB, False),  # amqtt cannot deliver shared filters
    ("server", "#", SUB, False),
    ("server", "other/topic", PUB, False),
    ("", "edgefleet/v1/dev-a/status", PUB, False),
    (None, "edgefleet/v1/dev-a/status", PUB, False),
])
def test_topic_rule(user: str | None, topic: str, action: Action, ok: bool) -> None:
    assert allowed(CREDS, user, topic, action) is ok
