"""Enrollment schemas (HTTP, POST /api/v1/enroll): shared here because the agent must not import the server.

The request is the one body the server takes before any credential is proven, and what it stores from it
(`hardware`) is sent back in every device listing, so every field has a bound: a 50 MB `hardware` would
otherwise make each `GET /devices` 50 MB too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from edgefleet.protocol.messages import _Strict, json_size_at_most

CSR_MAX_CHARS = 8192  # a PEM CSR for the largest key the fleet CA signs (RSA 8192) is about 3 KiB
HARDWARE_MAX_BYTES = 16_384
HARDWARE_MAX_DEPTH = 8  # the agent's facts nest two levels; pydantic refuses to serialise past ~255
# Names end up in text columns and tables: no control characters (PostgreSQL cannot store NUL at all).
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


def _walk(value: Any) -> Iterator[tuple[Any, int]]:
    """Every value, key and item inside a JSON value with its depth, using an explicit stack, not recursion,
    so a pathological value cannot exhaust Python's stack while being checked."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        yield item, depth
        if isinstance(item, dict):
            stack.extend((key, depth + 1) for key in item)
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend((child, depth + 1) for child in item)


def json_depth_at_most(limit: int):  # noqa: ANN201 - a validator factory
    """A validator bounding how deeply a JSON value nests; run it before anything that recurses (a size
    check that encodes the value, a serialiser). It also refuses text that is not valid Unicode: JSON may
    spell a lone surrogate (`"\\ud800"`), which Python parses, stores, and then cannot encode in any answer
    that includes it, so one such value would break every listing."""

    def check(value: Any) -> Any:
        for item, depth in _walk(value):
            if depth > limit:
                raise ValueError(f"nested too deeply: more than {limit} levels")
            if isinstance(item, str) and not _is_unicode(item):
                raise ValueError("text must be valid Unicode (a lone surrogate escape was given)")
        return value

    return check


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# Validators run in order: depth first, so the size check's encoder never meets a value nested too deeply.
Hardware = Annotated[dict[str, Any], AfterValidator(json_depth_at_most(HARDWARE_MAX_DEPTH)),
                     AfterValidator(json_size_at_most(HARDWARE_MAX_BYTES))]


class EnrollRequest(_Strict):
    token: str = Field(min_length=8, max_length=256)
    csr: str = Field(min_length=64, max_length=CSR_MAX_CHARS,
                     description="PEM certificate signing request; the key stays on the device")
    name: str | None = Field(None, max_length=128, pattern=PRINTABLE,
                             description="a human name for the device (no control characters)")
    hardware: Hardware = Field(default_factory=dict,
                               description=f"facts: cpu, memory, accelerators, cameras (at most "
                                           f"{HARDWARE_MAX_BYTES} bytes as JSON, {HARDWARE_MAX_DEPTH} levels deep)")


class EnrollResponse(_Strict):
    device_id: str
    certificate: str = Field(description="PEM device certificate signed by the fleet CA, CN = device_id")
    ca_certificate: str
    signing_public_key: str = Field(description="PEM Ed25519 key that signs model packages")
    control_public_key: str = Field(description="PEM Ed25519 key that seals the server's desired twins and "
                                                "commands; the device pins it")
    broker_url: str = Field(description="mqtt://host:port or mqtts://host:port")
    mqtt_username: str
    mqtt_password: str
    tags: dict[str, str] = Field(default_factory=dict)


class CaInfo(_Strict):
    """GET /api/v1/ca: the fleet CA's certificate, public and unauthenticated, so a device can compare it
    with the fingerprint the operator gave it before it sends its token (`agent enroll --ca-fingerprint`)."""

    certificate: str = Field(description="PEM certificate of the fleet CA")
    fingerprint_sha256: str = Field(description="SHA-256 of its DER bytes, 64 lower-case hex digits")
