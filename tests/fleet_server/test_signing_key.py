"""A server that holds only the public half of the model-signing key (fleet_server/signing_key.py): packages
are signed on another machine, the server verifies uploads and hands the public key to devices, and never
makes or reads a private key of its own."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from edgefleet import paths
from fleet_server.server import start_server_in_thread
from fleet_server.settings import ServerSettings
from models.signing import generate_private_key, public_key_pem
from tests.fleet_server.conftest import make_csr
from tests.fleet_server.model_packages import Packer

OCTETS = {"Content-Type": "application/octet-stream"}


@pytest.mark.parametrize("mode", ["lone public key beside the default path", "signing_public_key_file"])
def test_a_server_with_only_the_public_key_verifies_what_the_offline_key_signed(tmp_path: Path, mode: str) -> None:
    signing_host = Packer(generate_private_key(), tmp_path / "signing-host")  # `model keygen` + `package` there
    base = tmp_path / "fleet"
    if mode == "signing_public_key_file":
        public = tmp_path / "given" / "fleet-signing.pub.pem"
        extra = {"signing_public_key_file": public}
    else:
        public, extra = paths.signing_public_key_path(base), {}
    public.parent.mkdir(parents=True)
    public.write_text(public_key_pem(signing_host.key))
    settings = ServerSettings(state_dir=base / "server", port=0, **extra)
    with start_server_in_thread(settings, start_mqtt=False) as server:
        auth = {"Authorization": f"Bearer {server.admin_key}"}
        ours = httpx.post(f"{server.url}/api/v1/models", content=signing_host.make("1.0.0").read_bytes(),
                          headers={**auth, **OCTETS}, timeout=30)
        assert ours.status_code == 201, ours.text
        theirs = httpx.post(f"{server.url}/api/v1/models", headers={**auth, **OCTETS}, timeout=30,
                            content=Packer(generate_private_key(), tmp_path / "stranger").make("2.0.0").read_bytes())
        assert theirs.status_code == 422 and "sign" in theirs.json()["detail"]
        token = httpx.post(f"{server.url}/api/v1/tokens", json={}, headers=auth).json()["token"]
        enrolled = httpx.post(f"{server.url}/api/v1/enroll", json={"token": token, "csr": make_csr()[1]})
        assert enrolled.json()["signing_public_key"] == public_key_pem(signing_host.key)
    assert not paths.signing_key_path(base).exists()  # no private key was made
    assert list((base / "keys").glob("*.pem")) == ([] if extra else [public])  # ... nor any other key file
