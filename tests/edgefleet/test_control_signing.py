"""Sealed control messages (edgefleet.protocol.control): only the pinned server key opens them, only on the topic
they were sealed for, and a desired twin older than the newest accepted is a replay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgefleet import protocol as p
from edgefleet.protocol.control import ControlSigner, ControlVerifier, ReplayGuard, SequenceClock

DEVICE = "cam-1"
DESIRED = p.twin_desired_topic(DEVICE)
BODY = p.TwinDesired(revision=3, camera="synthetic").encode()


@pytest.fixture()
def signer() -> ControlSigner:
    return ControlSigner(Ed25519PrivateKey.generate())


def verifier(signer: ControlSigner, tmp_path: Path) -> ControlVerifier:
    return ControlVerifier(signer.public_key, ReplayGuard(tmp_path / "seq.json"))


def test_a_sealed_message_opens_to_exactly_its_body(signer, tmp_path):
    sealed = signer.seal(DESIRED, BODY)
    assert verifier(signer, tmp_path).open(p.parse_topic(DESIRED), DESIRED, sealed) == BODY
    assert json.loads(sealed)["body"] == BODY.decode()  # still readable on the wire


@pytest.mark.parametrize("case", ["unsigned", "other key", "altered body", "other topic", "no pinned key",
                                  "bad base64", "oversized"])
def test_anything_not_sealed_by_the_pinned_key_for_this_topic_is_refused(signer, tmp_path, case):
    topic = p.parse_topic(DESIRED)
    sealed = json.loads(signer.seal(DESIRED, BODY))
    key = signer.public_key
    if case == "unsigned":
        payload = BODY
    elif case == "other key":
        payload = ControlSigner(Ed25519PrivateKey.generate()).seal(DESIRED, BODY)
    elif case == "altered body":
        payload = json.dumps({**sealed, "body": sealed["body"].replace('"synthetic"', '"/etc/passwd"')}).encode()
    elif case == "other topic":
        payload = signer.seal(p.twin_desired_topic("cam-2"), BODY)
    elif case == "no pinned key":
        payload, key = json.dumps(sealed).encode(), None
    elif case == "bad base64":
        payload = json.dumps({**sealed, "sig": "!" * 86}).encode()
    else:
        payload = json.dumps({**sealed, "body": " " * 60_000}).encode()
    with pytest.raises(p.ProtocolError) as refused:
        ControlVerifier(key, ReplayGuard(tmp_path / "seq.json")).open(topic, DESIRED, payload)
    assert "/etc/passwd" not in str(refused.value)


def test_an_older_desired_twin_is_a_replay_even_after_a_restart_and_a_redelivery_is_not(signer, tmp_path):
    old, new = signer.seal(DESIRED, BODY), signer.seal(DESIRED, BODY)
    topic = p.parse_topic(DESIRED)
    verifier(signer, tmp_path).open(topic, DESIRED, new)
    restarted = verifier(signer, tmp_path)  # the guard is read back from the state dir
    assert restarted.open(topic, DESIRED, new) == BODY  # the broker re-sending the retained twin
    with pytest.raises(p.ProtocolError, match="replayed desired twin"):
        restarted.open(topic, DESIRED, old)


def test_commands_are_not_ordered_their_deadline_and_request_id_stop_replays(signer, tmp_path):
    first = p.cmd_topic(DEVICE, "r1")
    second = p.cmd_topic(DEVICE, "r2")
    body = p.Command(name="ping").encode()
    early, late = signer.seal(first, body), signer.seal(second, body)
    check = verifier(signer, tmp_path)
    assert check.open(p.parse_topic(second), second, late) == body
    assert check.open(p.parse_topic(first), first, early) == body  # delivered out of order: still fine


def test_the_sequence_only_goes_up_even_if_the_clock_does_not():
    clock = SequenceClock()
    values = [clock.next() for _ in range(1000)]
    assert values == sorted(set(values))
