"""GET /ca: the fleet CA's certificate and fingerprint, without a credential.

It is public (every device gets it at enrollment anyway); a device that was given the fingerprint out of band
reads it first, compares, and only then trusts the connection with its token (`agent enroll --ca-fingerprint`).
"""

from __future__ import annotations

from fastapi import APIRouter

from edgefleet.protocol import CaInfo
from edgefleet.trust import certificate_fingerprint
from fleet_server.api.deps import FleetDep
from fleet_server.api.errors import responses

router = APIRouter(tags=["enrollment"], responses=responses(413))


@router.get("/ca", response_model=CaInfo)
def fleet_ca(fleet: FleetDep) -> CaInfo:
    """The fleet CA certificate (PEM) and the SHA-256 fingerprint of its DER bytes."""
    return CaInfo(certificate=fleet.ca.cert_pem, fingerprint_sha256=certificate_fingerprint(fleet.ca.cert))
