"""Enrollment schemas (HTTP, POST /api/v1/enroll): shared here because the agent must not import the server."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from edgefleet.protocol.messages import _Strict


class EnrollRequest(_Strict):
    token: str = Field(min_length=8, max_length=256)
    csr: str = Field(min_length=64, description="PEM certificate signing request; the key stays on the device")
    name: str | None = Field(None, max_length=128, description="a human name for the device")
    hardware: dict[str, Any] = Field(default_factory=dict, description="facts: cpu, memory, accelerators, cameras")


class EnrollResponse(_Strict):
    device_id: str
    certificate: str = Field(description="PEM device certificate signed by the fleet CA, CN = device_id")
    ca_certificate: str
    signing_public_key: str = Field(description="PEM Ed25519 key that signs model packages")
    broker_url: str = Field(description="mqtt://host:port or mqtts://host:port")
    mqtt_username: str
    mqtt_password: str
    tags: dict[str, str] = Field(default_factory=dict)
