"""Enrollment against a small real HTTP server: the happy path and every refusal, which must store nothing."""

from __future__ import annotations

import datetime as dt
import json
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edgefleet.protocol import EnrollRequest, EnrollResponse
from edge_agent.fleet.enroll import enroll
from edge_agent.errors import EnrollmentError
from edge_agent.fleet.state import StateDir
from tests import services

GOOD_TOKEN = "good-token-123"


class _CA:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test fleet CA")])
        now = dt.datetime.now(dt.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
                     .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
                     .sign(self.key, hashes.SHA256()))

    def sign(self, csr_pem: str, device_id: str) -> str:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        assert csr.is_signature_valid
        now = dt.datetime.now(dt.timezone.utc)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
                .issuer_name(self.cert.subject).public_key(csr.public_key()).serial_number(2)
                .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)).sign(self.key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()


class FakeFleetServer:
    """Just POST /api/v1/enroll, with the server's error shapes (FastAPI's {"detail": ...})."""

    def __init__(self) -> None:
        self.ca = _CA()
        self.bodies: list[bytes] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                server.bodies.append(body)
                request = EnrollRequest.model_validate_json(body)
                if request.token == "forged-token-xx":
                    return self._reply(401, {"detail": "invalid enrollment token"})
                if request.token == "used-token-xxxx":
                    return self._reply(403, {"detail": "token already used"})
                response = EnrollResponse(
                    device_id="dev-0001", certificate=server.ca.sign(request.csr, "dev-0001"),
                    ca_certificate=server.ca.pem(), signing_public_key="-----BEGIN PUBLIC KEY-----\nx\n",
                    control_public_key="-----BEGIN PUBLIC KEY-----\nc\n",
                    broker_url="mqtt://127.0.0.1:1883", mqtt_username="dev-0001", mqtt_password="pw-secret",
                    tags={"site": "lab"})
                self._reply(200, json.loads(response.model_dump_json()))

            def _reply(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server() -> Iterator[FakeFleetServer]:
    s = FakeFleetServer()
    yield s
    s.close()


def test_enroll_stores_identity_with_private_files_0600(server, state_dir: Path):
    config = enroll(server.url, GOOD_TOKEN, state_dir, name="door cam", source="synthetic:door")
    assert config.device_id == "dev-0001" and config.tags == {"site": "lab"} and config.source == "synthetic:door"
    state = StateDir(state_dir)
    assert state.load_config() == config
    assert state.mqtt_password(config) == "pw-secret"
    assert state.control_key_path.read_text() == "-----BEGIN PUBLIC KEY-----\nc\n"  # pinned: seals its orders
    for secret in (state.key_path, state_dir / config.mqtt_password_file):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(state.cert_path.read_bytes())
    key = serialization.load_pem_private_key(state.key_path.read_bytes(), None)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()  # the cert is for OUR key
    assert b"PRIVATE KEY" not in server.bodies[0]  # the key never left the device
    assert "cpu_count" in json.loads(server.bodies[0])["hardware"]


@pytest.mark.parametrize("token, status, words", [("forged-token-xx", 401, "invalid enrollment token"),
                                                  ("used-token-xxxx", 403, "token already used")])
def test_refused_token_shows_the_servers_message_and_stores_nothing(server, state_dir, token, status, words):
    with pytest.raises(EnrollmentError, match=f"refused the enrollment token \\({status}\\): {words}"):
        enroll(server.url, token, state_dir)
    assert list(state_dir.iterdir()) == []


def test_unreachable_server_is_a_clear_error(state_dir):
    url = f"http://127.0.0.1:{services.free_port()}"
    with pytest.raises(EnrollmentError, match=f"cannot reach the fleet server at {url}"):
        enroll(url, GOOD_TOKEN, state_dir)
    assert list(state_dir.iterdir()) == []


def test_enrolled_state_dir_is_not_overwritten_without_force(server, state_dir):
    first = enroll(server.url, GOOD_TOKEN, state_dir)
    key_before = StateDir(state_dir).key_path.read_bytes()
    with pytest.raises(EnrollmentError, match="already holds device 'dev-0001'.*--force"):
        enroll(server.url, GOOD_TOKEN, state_dir)
    assert StateDir(state_dir).key_path.read_bytes() == key_before
    second = enroll(server.url, GOOD_TOKEN, state_dir, force=True)
    assert second.device_id == first.device_id
    assert StateDir(state_dir).key_path.read_bytes() != key_before  # a fresh key for the new identity


def test_failed_forced_reenrollment_keeps_the_old_identity(server, state_dir):
    enroll(server.url, GOOD_TOKEN, state_dir)
    key_before = StateDir(state_dir).key_path.read_bytes()
    with pytest.raises(EnrollmentError):
        enroll(server.url, "forged-token-xx", state_dir, force=True)
    assert StateDir(state_dir).key_path.read_bytes() == key_before


def test_cli_enroll_prints_the_error_and_exits_2(server, state_dir):
    from edgefleet.cli import cli

    result = CliRunner().invoke(cli, ["agent", "enroll", "--server", server.url, "--token", "forged-token-xx",
                                      "--state-dir", str(state_dir)])
    assert result.exit_code == 2
    assert "invalid enrollment token" in result.output
    ok = CliRunner().invoke(cli, ["agent", "enroll", "--server", server.url, "--token", GOOD_TOKEN,
                                  "--state-dir", str(state_dir)])
    assert ok.exit_code == 0 and "enrolled as dev-0001" in ok.output
