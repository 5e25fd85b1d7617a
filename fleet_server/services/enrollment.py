"""Enrollment (DESIGN.md 3): token -> device row, signed certificate and MQTT credentials, all or nothing."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy.orm import Session

from edgefleet.protocol import EnrollRequest, EnrollResponse, validate_device_id
from fleet_server import credentials
from fleet_server.nats.users import bcrypt_hash
from fleet_server.db.models import Device
from fleet_server.pki import CertificateAuthority, cert_pem, serial_hex
from fleet_server.services import audit, tokens


@dataclass(frozen=True)
class EnrollContext:
    """What enrollment hands out besides the certificate; fixed for a running server."""

    ca: CertificateAuthority
    broker_url: str
    signing_public_key: str
    control_public_key: str
    cert_days: int = 365


def new_device_id(name: str | None) -> str:
    """Readable and unique: a slug of the name (if any) plus 8 random hex digits, valid as a topic level."""
    slug = re.sub(r"[^a-z0-9]+", "-", (name or "").lower()).strip("-")[:40].strip("-")
    device_id = f"{slug}-{secrets.token_hex(4)}" if slug else f"dev-{secrets.token_hex(6)}"
    return validate_device_id(device_id)


def enroll(session: Session, request: EnrollRequest, ctx: EnrollContext) -> EnrollResponse:
    """Check the token, sign the CSR, then take a token use and create the device in one transaction.

    The order matters: a bad token is refused before the CSR is even read, and a bad CSR is refused before
    a token use is taken, so neither failure leaves anything behind. The caller commits.
    """
    token = tokens.check_token(session, request.token)
    device_id = new_device_id(request.name)
    cert = ctx.ca.sign_csr(request.csr, device_id, days=ctx.cert_days)
    tokens.consume_use(session, token.id)
    password = credentials.new_secret()
    now = datetime.now(timezone.utc)
    device = Device(id=device_id, name=request.name, tags=dict(token.tags), status="offline", desired=None,
                    desired_revision=0, reported=None, enrolled_at=now, enrolled_with=token.id,
                    mqtt_password_hash=credentials.hash_secret(password),
                    mqtt_password_bcrypt=bcrypt_hash(password), cert_serial=serial_hex(cert),
                    hardware=dict(request.hardware))
    session.add(device)
    audit.record(session, actor=f"token:{token.id}", action="device.enroll", target=device_id,
                 details={"name": request.name, "tags": device.tags, "cert_serial": device.cert_serial})
    session.flush()
    return EnrollResponse(device_id=device_id, certificate=cert_pem(cert), ca_certificate=ctx.ca.cert_pem,
                          signing_public_key=ctx.signing_public_key,
                          control_public_key=ctx.control_public_key, broker_url=ctx.broker_url,
                          mqtt_username=device_id, mqtt_password=password, tags=device.tags)
