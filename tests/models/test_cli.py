"""`edgefleet model ...` through the real `edgefleet` click group (and once as a real process): every refusal is
exit code 1 with one red line naming the package and the problem, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgefleet.cli import cli
from edgefleet.paths import signing_key_path, signing_public_key_path
from models.package import file_sha256, verify
from models.signing import key_id, load_public_key
from tests.models.damage import CASES
from tests.models.tampering import flip_byte_in_member

EDGEFLEET = Path(sys.executable).parent / "edgefleet"


def run(*args: str | Path):
    return CliRunner().invoke(cli, ["model", *map(str, args)])


def test_verify_good_package_prints_name_version_precision_and_files(package, public_pem) -> None:
    result = run("verify", package, "--key", public_pem)
    assert result.exit_code == 0, result.output
    assert "digits 1.0.0 (fp32), signature valid, 4 file(s) match" in result.stdout
    for name in ("model.onnx", "model.xml", "model.bin", "model_card.md"):
        assert name in result.stdout


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_verify_damaged_package_exits_1_with_one_clear_line(case_id, package, public_pem, tmp_path, signing_key,
                                                            other_key) -> None:
    case = CASES[case_id]
    bad = tmp_path / "bad" / package.name
    bad.parent.mkdir()
    case.build(package, bad, signing_key, other_key)
    result = run("verify", bad, "--key", public_pem)
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {bad.name}: ")
    assert case.says in lines[0]
    assert "Traceback" not in result.output


def test_verify_uses_the_state_dir_key_by_default(package, signing_key, state_dir: Path) -> None:
    pub = signing_public_key_path(state_dir)
    pub.parent.mkdir(parents=True)
    from models.signing import public_key_pem

    pub.write_text(public_key_pem(signing_key))
    assert run("verify", package, "--state-dir", state_dir).exit_code == 0


def test_verify_without_any_public_key_says_how_to_get_one(package, state_dir: Path) -> None:
    result = run("verify", package, "--state-dir", state_dir)
    assert result.exit_code == 1
    assert "no public key at" in result.stderr and "edgefleet model keygen" in result.stderr


def test_verify_of_a_missing_file(public_pem, tmp_path) -> None:
    result = run("verify", tmp_path / "nope.efpkg", "--key", public_pem)
    assert result.exit_code == 1 and "no package at" in result.stderr


def test_verify_as_a_real_process(package, public_pem, tmp_path) -> None:
    ok = subprocess.run([EDGEFLEET, "model", "verify", package, "--key", public_pem], capture_output=True, text=True,
                        timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "signature valid" in ok.stdout
    flip_byte_in_member(package, "model.onnx", index=3)
    bad = subprocess.run([EDGEFLEET, "model", "verify", package, "--key", public_pem], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 1
    assert bad.stderr.strip() .startswith("error: digits-1.0.0.efpkg: model.onnx is corrupt or altered")
    assert "Traceback" not in bad.stderr


def test_keygen_creates_the_fleet_key_once(state_dir: Path) -> None:
    first = run("keygen", "--state-dir", state_dir)
    assert first.exit_code == 0, first.output
    private = signing_key_path(state_dir)
    assert private.stat().st_mode & 0o777 == 0o600
    kid = key_id(load_public_key(signing_public_key_path(state_dir)))
    assert f"key id {kid}" in first.stdout and str(signing_public_key_path(state_dir)) in first.stdout
    pem = private.read_bytes()
    second = run("keygen", "--state-dir", state_dir)
    assert second.exit_code == 0 and f"key id {kid}" in second.stdout
    assert private.read_bytes() == pem


def _source_dir(tmp_path: Path, payload: dict[str, Path], make_manifest) -> Path:
    src = tmp_path / "build"
    src.mkdir()
    for name, path in payload.items():
        (src / name).write_bytes(path.read_bytes())
    manifest = make_manifest()
    (src / "manifest.json").write_bytes(manifest.canonical_bytes())  # files: {} -> only the runtime files
    return src


def test_package_signs_a_directory_with_the_state_dir_key(tmp_path, payload, make_manifest, state_dir) -> None:
    src = _source_dir(tmp_path, payload, make_manifest)
    result = run("package", src, "--out", tmp_path / "dist", "--state-dir", state_dir)
    assert result.exit_code == 0, result.output
    pkg = tmp_path / "dist" / "digits-1.0.0.efpkg"
    manifest = verify(pkg, signing_public_key_path(state_dir))
    assert set(manifest.files) == {"model.onnx", "model.xml", "model.bin"}  # the card was not listed


def test_package_includes_every_file_the_manifest_lists(tmp_path, payload, make_manifest, state_dir) -> None:
    src = _source_dir(tmp_path, payload, make_manifest)
    manifest = make_manifest(files={"model_card.md": ""})
    (src / "manifest.json").write_bytes(manifest.canonical_bytes())
    assert run("package", src, "--out", tmp_path / "dist", "--state-dir", state_dir).exit_code == 0
    manifest = verify(tmp_path / "dist" / "digits-1.0.0.efpkg", signing_public_key_path(state_dir))
    assert "model_card.md" in manifest.files


def test_package_with_a_missing_runtime_file_exits_1(tmp_path, payload, make_manifest, state_dir) -> None:
    src = _source_dir(tmp_path, payload, make_manifest)
    (src / "model.bin").unlink()
    result = run("package", src, "--out", tmp_path / "dist", "--state-dir", state_dir)
    assert result.exit_code == 1 and "model.bin" in result.stderr
    assert not (tmp_path / "dist" / "digits-1.0.0.efpkg").exists()


def test_package_with_an_invalid_manifest_exits_1(tmp_path, payload, make_manifest, state_dir) -> None:
    src = _source_dir(tmp_path, payload, make_manifest)
    (src / "manifest.json").write_text('{"name": "digits"}')
    result = run("package", src, "--out", tmp_path / "dist", "--state-dir", state_dir)
    assert result.exit_code == 1 and "does not validate" in result.stderr


def test_inspect_json_shows_manifest_and_package_sha256(package) -> None:
    result = run("inspect", package, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["package"]["sha256"] == file_sha256(package)
    assert doc["manifest"]["name"] == "digits" and doc["manifest"]["labels"][0] == "0"


def test_inspect_table_says_it_is_not_verified(package) -> None:
    result = run("inspect", package)
    assert result.exit_code == 0 and "not verified" in result.stdout and "digits" in result.stdout


def test_add_then_list(package, public_pem, tmp_path) -> None:
    registry = tmp_path / "registry"
    added = run("add", package, "--registry", registry, "--key", public_pem)
    assert added.exit_code == 0, added.output
    listed = run("list", "--registry", registry, "--json")
    assert listed.exit_code == 0
    (entry,) = json.loads(listed.stdout)
    assert (entry["name"], entry["version"], entry["sha256"]) == ("digits", "1.0.0", file_sha256(package))
    table = run("list", "--registry", registry)
    assert table.exit_code == 0 and "digits" in table.stdout


def test_add_refuses_a_package_signed_by_another_key(tmp_path, payload, make_manifest, other_key, public_pem) -> None:
    from models.package import pack

    foreign = pack(make_manifest(), payload, tmp_path / "foreign", other_key)
    result = run("add", foreign, "--registry", tmp_path / "registry", "--key", public_pem)
    assert result.exit_code == 1 and "not by the trusted key" in result.stderr
    assert list((tmp_path / "registry").glob("*")) == []


def test_verify_json_reports_ok_and_the_manifest(package, public_pem) -> None:
    result = run("verify", package, "--key", public_pem, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["sha256"] == file_sha256(package) and doc["manifest"]["version"] == "1.0.0"


def test_verify_json_reports_the_error_kind(package, public_pem) -> None:
    flip_byte_in_member(package, "model.bin")
    result = run("verify", package, "--key", public_pem, "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc == {"ok": False, "kind": "IntegrityError", "error": doc["error"]}
    assert "model.bin is corrupt" in doc["error"]
