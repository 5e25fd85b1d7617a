"""The rendered nats.conf and users file, checked by the real binary's own config test (`nats-server -t`)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from fleet_server.nats.config import NatsConfig, NatsLimits, quote, render_config, write_config
from fleet_server.nats.users import bcrypt_hash, write_users_file


def nats_accepts(binary: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), "-t", "-c", str(config)], capture_output=True, text=True, timeout=60,
                          check=False)


def test_rendered_config_and_users_pass_nats_servers_own_check(nats_binary: Path, tmp_path: Path) -> None:
    cfg = NatsConfig(tmp_path / "state", mqtt_port=0)
    write_config(cfg)
    write_users_file(cfg.users_path, bcrypt_hash("server"), [("dev-1", bcrypt_hash("one")),
                                                             ("dev-2", bcrypt_hash("two"))])
    result = nats_accepts(nats_binary, cfg.config_path)
    assert result.returncode == 0, result.stderr + result.stdout
    cfg.users_path.write_text(cfg.users_path.read_text().replace("]\n", ""))  # a broken users file...
    assert nats_accepts(nats_binary, cfg.config_path).returncode != 0  # ...is caught by the same check


def test_config_binds_the_host_picks_free_ports_for_zero_and_keeps_state_inside(tmp_path: Path) -> None:
    text = render_config(NatsConfig(tmp_path, mqtt_port=0, client_port=0))
    assert 'host: "127.0.0.1"' in text and "port: -1" in text and 'listen: "127.0.0.1:-1"' in text
    assert f'store_dir: "{tmp_path.resolve() / "store"}"' in text
    assert f'log_file: "{tmp_path.resolve() / "nats.log"}"' in text
    fixed = render_config(NatsConfig(tmp_path, mqtt_port=18830, client_port=14222))
    assert "port: 14222" in fixed and 'listen: "127.0.0.1:18830"' in fixed
    assert "timeout: 3\n" in text and 'include "users.conf"' in text


def test_limits_are_rendered_and_checked(tmp_path: Path) -> None:
    limits = NatsLimits(max_payload=3_000_000, max_connections=500, auth_timeout_s=1.5, ack_wait_s=10,
                        max_ack_pending=100)
    text = render_config(NatsConfig(tmp_path, limits=limits))
    for line in ("max_payload: 3000000", "max_connections: 500", "timeout: 1.5", 'ack_wait: "10s"',
                 "max_ack_pending: 100"):
        assert line in text
    with pytest.raises(ValueError):
        NatsLimits(max_ack_pending=70000)
    with pytest.raises(ValueError):
        NatsConfig(tmp_path, mqtt_port=70000)


def test_values_that_would_break_out_of_a_quoted_string_are_refused(tmp_path: Path) -> None:
    assert quote("$2b$04$abc") == '"$2b$04$abc"'
    for bad in ('a"b', "a\\b", "a\nb"):
        with pytest.raises(ValueError):
            quote(bad)
    with pytest.raises(ValueError):
        render_config(NatsConfig(tmp_path / 'we"ird'))


def test_config_file_is_private(tmp_path: Path) -> None:
    path = write_config(NatsConfig(tmp_path / "state"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["nats.conf", "store"]


def test_off_loopback_the_mqtt_listener_needs_tls_and_the_client_port_stays_on_loopback(
        nats_binary: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not loopback, only with TLS"):
        NatsConfig(tmp_path, host="0.0.0.0")
    from fleet_server.pki import CertificateAuthority
    from fleet_server.tls_identity import issue_tls_identity

    cert, key = issue_tls_identity(CertificateAuthority.load_or_create(tmp_path / "pki"), "broker-tls", ["127.0.0.1"])
    cfg = NatsConfig(tmp_path / "state", host="0.0.0.0", mqtt_port=0, tls_cert=cert, tls_key=key)
    text = render_config(cfg)
    assert 'listen: "0.0.0.0:-1"' in text and 'host: "127.0.0.1"' in text  # NATS's own port: never exposed
    assert f'cert_file: "{cert.resolve()}"' in text and 'min_version: "1.2"' in text
    write_config(cfg)
    write_users_file(cfg.users_path, bcrypt_hash("server"), [])
    result = nats_accepts(nats_binary, cfg.config_path)
    assert result.returncode == 0, result.stderr + result.stdout
