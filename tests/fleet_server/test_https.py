"""HTTPS for the fleet server (fleet_server/server.py, tls_identity.py, settings.py): plain HTTP only on loopback
(or when explicitly allowed), a certificate from the fleet CA naming the configured hosts, or one given in the
settings; and a half-present fleet CA stops the server instead of being replaced."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from pydantic import ValidationError

from fleet_server.pki import CaIncomplete, CertificateAuthority
from fleet_server.server import ServerStartError, start_server_in_thread
from fleet_server.settings import ServerSettings
from fleet_server.tls_identity import certificate_hosts, issue_tls_identity


def _names(cert_path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return {str(n.value) for n in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value}


def _context(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


@pytest.mark.parametrize("values,https", [
    ({}, False),  # loopback: plain HTTP, as `make demo` and the tests use it
    ({"host": "0.0.0.0"}, True),  # off loopback TLS is the default
    ({"host": "0.0.0.0", "tls": False, "insecure_http": True}, False),  # or explicitly allowed
    ({"tls": True}, True),
])
def test_https_is_the_default_off_loopback(tmp_path: Path, values: dict, https: bool) -> None:
    assert ServerSettings(state_dir=tmp_path, **values).https is https


@pytest.mark.parametrize("values,error", [
    ({"host": "10.1.2.3", "tls": False}, "not loopback, without TLS"),
    ({"embedded_broker_host": "0.0.0.0", "embedded_broker_tls": False}, "embedded broker binds 0.0.0.0"),
    ({"tls_cert_file": "/x.crt"}, "together"),
    ({"tls": False, "tls_cert_file": "/x.crt", "tls_key_file": "/x.key"}, "TLS turned off"),
])
def test_settings_that_would_expose_secrets_in_clear_are_refused(tmp_path: Path, values: dict, error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        ServerSettings(state_dir=tmp_path, **values)


def test_the_fleet_ca_certificate_names_the_configured_hosts_and_is_reissued_when_they_change(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "pki")
    settings = ServerSettings(state_dir=tmp_path, host="0.0.0.0", tls_hosts=["fleet.example", "10.9.8.7"],
                              public_url="https://edge.example:8443")
    hosts = certificate_hosts(settings)
    assert {"127.0.0.1", "localhost", "fleet.example", "10.9.8.7", "edge.example"} <= set(hosts)
    cert, _ = issue_tls_identity(ca, "https", hosts)
    assert _names(cert) == set(hosts)
    first = cert.read_bytes()
    assert issue_tls_identity(ca, "https", hosts)[0].read_bytes() == first  # reused while it fits
    issue_tls_identity(ca, "https", [*hosts, "new.example"])
    assert cert.read_bytes() != first and "new.example" in _names(cert)


def test_a_server_with_a_certificate_given_in_the_settings_serves_it(tmp_path: Path) -> None:
    other = CertificateAuthority.load_or_create(tmp_path / "other-ca")  # stands in for a public CA
    cert, key = issue_tls_identity(other, "given", ["127.0.0.1", "localhost"])
    settings = ServerSettings(state_dir=tmp_path / "s", port=0, tls_cert_file=cert, tls_key_file=key)
    with start_server_in_thread(settings, start_mqtt=False) as handle:
        assert handle.url.startswith("https://127.0.0.1:")
        assert httpx.get(f"{handle.url}/healthz", verify=_context(other.cert_path)).status_code == 200
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{handle.url}/healthz", verify=_context(handle.fleet.ca.cert_path))


@pytest.mark.parametrize("kept", ["ca.key", "ca.crt"])
def test_a_half_present_fleet_ca_stops_the_server_instead_of_being_replaced(tmp_path: Path, kept: str) -> None:
    pki = tmp_path / "s" / "pki"
    CertificateAuthority.load_or_create(pki)
    (pki / ({"ca.key", "ca.crt"} - {kept}).pop()).unlink()
    with pytest.raises(CaIncomplete, match="restore|Restore"):
        CertificateAuthority.load_or_create(pki)
    for tls in (False, True):  # refused by the Fleet's start-up, and by the HTTPS set-up before it
        with pytest.raises(ServerStartError, match="fleet CA is incomplete"):
            start_server_in_thread(ServerSettings(state_dir=tmp_path / "s", port=0, tls=tls), start_mqtt=False)
    assert sorted(p.name for p in pki.glob("ca.*")) == [kept]
