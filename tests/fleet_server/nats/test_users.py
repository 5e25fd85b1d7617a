"""Device permissions cover exactly protocol v1's topics, in each topic's direction, and nothing else."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import bcrypt
import pytest

from edgefleet import protocol as p
from fleet_server.nats.users import (
    SERVER_USER,
    DeviceUser,
    bcrypt_hash,
    device_permissions,
    render_users,
    server_permissions,
    to_subject,
    write_users_file,
)

SHA = "cd" * 32


def within(subject: str, allowed: str) -> bool:
    """NATS's rule: a subject (or subscription pattern) is covered when each token fits the allowed one."""
    s, a = subject.split("."), allowed.split(".")
    for i, token in enumerate(a):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]) or (token == "*" and s[i] == ">"):
            return False
    return len(s) == len(a)


def allowed(subject: str, allow: tuple[str, ...]) -> bool:
    return any(within(subject, a) for a in allow)


def uplink(d: str) -> list[str]:
    return [p.status_topic(d), p.telemetry_topic(d), p.events_topic(d), p.twin_reported_topic(d),
            p.cmd_reply_topic(d, "r-1"), p.ota_get_topic(d)]


def downlink(d: str) -> list[str]:
    return [p.twin_desired_topic(d), p.cmd_topic(d, "r-1"), p.ota_data_topic(d, SHA, 262144)]


def test_device_may_publish_its_uplink_and_receive_its_downlink_only() -> None:
    perms = device_permissions("dev-a")
    for topic in uplink("dev-a"):
        assert allowed(to_subject(topic), perms.publish) and not allowed(to_subject(topic), perms.subscribe)
    for topic in downlink("dev-a"):
        assert allowed(to_subject(topic), perms.subscribe) and not allowed(to_subject(topic), perms.publish)
    for topic in uplink("dev-b") + downlink("dev-b"):
        assert not allowed(to_subject(topic), perms.publish + perms.subscribe)


def test_the_agents_subscription_filters_fit_the_subscribe_allow_list() -> None:
    perms = device_permissions("dev-a")
    subjects = [to_subject(f) for f in p.device_subscriptions("dev-a")]
    subjects.append(subjects[-1][: -len(".>")])  # `ota/data/#` also matches `ota/data` itself in NATS
    assert all(allowed(s, perms.subscribe) for s in subjects)
    assert not allowed(to_subject(f"{p.TOPIC_ROOT}/dev-a/#"), perms.subscribe)
    assert not any(a.startswith("$") for a in perms.publish + perms.subscribe)


def test_server_may_use_every_fleet_topic_but_no_shared_or_internal_subject() -> None:
    perms = server_permissions()
    for topic in uplink("dev-a") + downlink("dev-b"):
        assert allowed(to_subject(topic), perms.publish) and allowed(to_subject(topic), perms.subscribe)
    for f in p.server_subscriptions(shared=False):
        assert allowed(to_subject(f), perms.subscribe)
    assert not allowed(to_subject(p.server_subscriptions(shared=True)[1]), perms.subscribe)
    assert not allowed("$MQTT.sess.x", perms.subscribe + perms.publish)


def test_bcrypt_hash_is_cheap_and_checks_out() -> None:
    h = bcrypt_hash("a" * 43)
    assert h.startswith("$2b$04$") and bcrypt.checkpw(b"a" * 43, h.encode())
    with pytest.raises(ValueError):
        bcrypt_hash("x" * 73)


@pytest.mark.parametrize("bad", ["sha256:" + "0" * 64, "plain", "$2b$04$short", "$2b$03$" + "a" * 53])
def test_only_bcrypt_hashes_are_accepted(bad: str) -> None:
    with pytest.raises(ValueError):
        DeviceUser("dev-a", bad)


def test_invalid_device_ids_duplicates_and_the_servers_name_are_refused() -> None:
    h = bcrypt_hash("x")
    with pytest.raises(p.ProtocolError):
        DeviceUser("Dev.A", h)
    with pytest.raises(ValueError):
        render_users(h, [DeviceUser("dev-a", h), DeviceUser("dev-a", h)])
    with pytest.raises(ValueError):
        render_users(h, [DeviceUser(SERVER_USER, h)])


def test_users_file_is_written_whole_and_private(tmp_path: Path) -> None:
    path = tmp_path / "users.conf"
    h = bcrypt_hash("x")
    assert write_users_file(path, h, [("dev-a", h), DeviceUser("dev-b", h)]) == 2
    assert write_users_file(path, h, [("dev-c", h)]) == 1
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [f.name for f in tmp_path.iterdir()] == ["users.conf"]  # no temporary file left behind
    text = path.read_text()
    assert '"dev-c"' in text and '"dev-a"' not in text and text.count("user:") == 2
