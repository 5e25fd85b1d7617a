"""Enrollment: turn a one-time token into a device identity.

The device makes its own EC P-256 key (it never leaves the state dir), sends only a CSR with the token and
a few hardware facts, and stores what the server returns: certificate, CA, model-signing key, broker
address and MQTT credentials. A failed enrollment stores nothing, and a state dir that already holds an
identity is never overwritten without ``--force``.
"""

from __future__ import annotations

import glob
import logging
import platform
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edgefleet.protocol import EnrollRequest, EnrollResponse
from edge_agent.errors import EnrollmentError
from edge_agent.fleet.server_trust import (check_returned_ca, check_server_url, fetch_pinned_ca, parse_fingerprint,
                                           pinned_context, tls_hint)
from edge_agent.fleet.state import AgentConfig, StateDir

log = logging.getLogger(__name__)
ENROLL_PATH = "/api/v1/enroll"


def generate_key_and_csr(common_name: str) -> tuple[bytes, bytes]:
    """A fresh EC P-256 private key (PKCS8 PEM) and a CSR for it. The server replaces the CN with the device id."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64] or "edgefleet-device")]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


def hardware_facts() -> dict[str, Any]:
    """What the operator sees about a new device: CPU, memory, accelerators, cameras. Every probe is optional."""
    facts: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine(),
                             "python": platform.python_version()}
    try:
        import psutil

        facts["cpu_count"] = psutil.cpu_count(logical=True)
        facts["memory_mb"] = round(psutil.virtual_memory().total / 2**20)
    except Exception as exc:  # noqa: BLE001 - a missing fact is not a failed enrollment
        log.info("psutil facts unavailable: %s", exc)
    try:
        import openvino

        facts["openvino_devices"] = list(openvino.Core().available_devices)
    except Exception as exc:  # noqa: BLE001
        log.info("OpenVINO devices unavailable: %s", exc)
    try:
        import onnxruntime

        facts["onnxruntime_providers"] = list(onnxruntime.get_available_providers())
    except Exception as exc:  # noqa: BLE001
        log.info("onnxruntime providers unavailable: %s", exc)
    facts["cameras"] = sorted(glob.glob("/dev/video*"))
    return facts


def _server_message(response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict):
        detail = body.get("detail", body.get("error", body))
        if isinstance(detail, dict):
            detail = detail.get("message", detail)
        return str(detail)
    return str(body)


def request_enrollment(server_url: str, request: EnrollRequest, timeout: float = 15.0,
                       verify: ssl.SSLContext | bool = True) -> EnrollResponse:
    """POST the enrollment request; every failure becomes an :class:`EnrollmentError` with the server's words.
    `verify`: how the server's certificate is checked (server_trust decides; never False here)."""
    import httpx

    url = server_url.rstrip("/") + ENROLL_PATH
    try:
        response = httpx.post(url, content=request.model_dump_json(), timeout=timeout, verify=verify,
                              headers={"content-type": "application/json"})
    except httpx.HTTPError as exc:
        raise EnrollmentError(tls_hint(server_url, exc)) from None
    if response.status_code in (401, 403):
        raise EnrollmentError(
            f"the server refused the enrollment token ({response.status_code}): {_server_message(response)}")
    if response.status_code >= 400:
        raise EnrollmentError(f"enrollment failed ({response.status_code}): {_server_message(response)}")
    try:
        return EnrollResponse.model_validate_json(response.content)
    except ValueError as exc:
        raise EnrollmentError(f"the server at {server_url} sent an unexpected enrollment reply: {exc}") from None


def enroll(server_url: str, token: str, state_dir: Path, *, name: str | None = None, source: str | None = None,
           force: bool = False, ca_fingerprint: str | None = None) -> AgentConfig:
    """Enroll this device and store its identity in ``state_dir``; return the new config. With
    ``ca_fingerprint`` the fleet CA is pinned before the token leaves the device (server_trust)."""
    check_server_url(server_url)
    pin = parse_fingerprint(ca_fingerprint) if ca_fingerprint else None
    state = StateDir(state_dir)
    if state.is_enrolled() and not force:
        existing = state.load_config()
        raise EnrollmentError(
            f"{state.root} already holds device {existing.device_id!r}; pass --force to enroll again "
            "(the old identity is replaced)")
    key_pem, csr_pem = generate_key_and_csr(name or platform.node() or "edgefleet-device")
    try:
        request = EnrollRequest(token=token, csr=csr_pem.decode(), name=name, hardware=hardware_facts())
    except ValueError as exc:
        raise EnrollmentError(f"invalid enrollment request: {exc}") from None
    verify = pinned_context(fetch_pinned_ca(server_url, pin)) if pin else True
    response = request_enrollment(server_url, request, verify=verify)
    check_returned_ca(response.ca_certificate, pin)

    state.ensure()
    state.write_secret(state.key_path, key_pem)
    state.write_public(state.csr_path, csr_pem)
    state.write_public(state.cert_path, response.certificate)
    state.write_public(state.ca_path, response.ca_certificate)
    state.write_public(state.signing_key_path, response.signing_public_key)
    state.write_public(state.control_key_path, response.control_public_key)
    state.control_seq_path.unlink(missing_ok=True)  # a new identity: the replay guard starts from this server's next twin
    state.save_password(response.mqtt_password)
    config = AgentConfig(device_id=response.device_id, server_url=server_url, broker_url=response.broker_url,
                         mqtt_username=response.mqtt_username, name=name, tags=dict(response.tags),
                         source=source or "synthetic")
    state.save_config(config)  # last: its presence is what "enrolled" means
    log.info("enrolled as %s (broker %s)", config.device_id, config.broker_url)
    return config
