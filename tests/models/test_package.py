"""pack / verify / unpack: a good package round-trips byte for byte; every damaged one is refused with the right
error, naming the file, and a refused unpack leaves nothing behind."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from models.errors import ManifestError, PackageError, PackageNotFound, SignatureError, UnsafePackageError
from models.package import file_sha256, pack, read_manifest, unpack, verify
from models.signing import public_key_pem
from tests.models.damage import CASES, Damage
from tests.models.tampering import Member, members_of, rewrite


def _bad(case: Damage, package: Path, tmp_path: Path, signing_key, other_key) -> Path:
    out = tmp_path / "bad" / package.name
    out.parent.mkdir()
    return case.build(package, out, signing_key, other_key)


def test_pack_writes_name_version_efpkg_with_manifest_signature_and_sorted_payload(package: Path, payload) -> None:
    assert package.name == "digits-1.0.0.efpkg"
    with tarfile.open(package) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["manifest.json", "signature", *sorted(payload)]
    assert all(m.isreg() and m.uid == 0 and m.gid == 0 and m.mode == 0o644 for m in members)
    assert len({m.mtime for m in members}) == 1


def test_pack_fills_manifest_files_with_sha256_of_each_file(tmp_path, payload, make_manifest, signing_key) -> None:
    manifest = make_manifest()
    assert manifest.files == {}
    pack(manifest, payload, tmp_path / "out", signing_key)
    assert manifest.files == {name: file_sha256(path) for name, path in payload.items()}


def test_pack_is_deterministic(tmp_path, payload, make_manifest, signing_key) -> None:
    manifest = make_manifest()
    first = pack(manifest.model_copy(deep=True), payload, tmp_path / "a", signing_key)
    second = pack(manifest.model_copy(deep=True), payload, tmp_path / "b", signing_key)
    assert first.read_bytes() == second.read_bytes()


def test_stored_manifest_is_the_canonical_bytes(package: Path) -> None:
    stored = next(m.data for m in members_of(package) if m.name == "manifest.json")
    assert stored == read_manifest(package).canonical_bytes()


def test_verify_returns_the_manifest(package: Path, signing_key) -> None:
    manifest = verify(package, signing_key.public_key())
    assert (manifest.name, manifest.version, manifest.precision) == ("digits", "1.0.0", "fp32")
    assert set(manifest.files) == {"model.onnx", "model.xml", "model.bin", "model_card.md"}


@pytest.mark.parametrize("key_form", ["object", "pem-str", "pem-bytes", "path", "path-str"])
def test_verify_accepts_the_public_key_in_every_form(package, signing_key, public_pem, key_form) -> None:
    key = {"object": signing_key.public_key(), "pem-str": public_key_pem(signing_key),
           "pem-bytes": public_key_pem(signing_key).encode(), "path": public_pem, "path-str": str(public_pem)}[key_form]
    assert verify(package, key).name == "digits"


def test_unpack_round_trips_every_file_byte_for_byte(package, payload, tmp_path, signing_key) -> None:
    dest = tmp_path / "slots" / "a"
    manifest = unpack(package, dest, signing_key.public_key())
    assert sorted(p.name for p in dest.iterdir()) == sorted([*payload, "manifest.json", "signature"])
    for name, src in payload.items():
        assert (dest / name).read_bytes() == src.read_bytes()
    assert (dest / "manifest.json").read_bytes() == manifest.canonical_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["a"]  # no temp dirs left


def test_unpacked_onnx_model_runs_in_onnxruntime(package, tmp_path, signing_key) -> None:
    ort = pytest.importorskip("onnxruntime")
    import numpy as np

    manifest = unpack(package, tmp_path / "m", signing_key.public_key())
    session = ort.InferenceSession(str(tmp_path / "m" / manifest.runtimes.onnx), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": np.ones(manifest.input.shape, dtype=np.float32)})
    assert logits.shape == (1, len(manifest.labels))


def test_unpack_refuses_an_existing_destination_and_replaces_it_when_asked(package, tmp_path, signing_key) -> None:
    dest = tmp_path / "slot"
    dest.mkdir()
    (dest / "old.txt").write_text("previous model")
    with pytest.raises(PackageError, match="already exists"):
        unpack(package, dest, signing_key.public_key())
    assert (dest / "old.txt").read_text() == "previous model"
    unpack(package, dest, signing_key.public_key(), replace=True)
    assert not (dest / "old.txt").exists() and (dest / "model.onnx").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_verify_refuses_damaged_package(case_id, package, tmp_path, signing_key, other_key) -> None:
    case = CASES[case_id]
    bad = _bad(case, package, tmp_path, signing_key, other_key)
    with pytest.raises(case.error) as info:
        verify(bad, signing_key.public_key())
    assert case.says in str(info.value)
    assert str(info.value).startswith(bad.name)


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_failed_unpack_leaves_nothing_behind(case_id, package, tmp_path, signing_key, other_key) -> None:
    case = CASES[case_id]
    bad = _bad(case, package, tmp_path, signing_key, other_key)
    area = tmp_path / "area" / "deep"
    area.mkdir(parents=True)
    with pytest.raises(case.error):
        unpack(bad, area / "slot", signing_key.public_key())
    assert list(area.iterdir()) == []
    assert list((tmp_path / "area").iterdir()) == [area]  # nothing escaped one or two levels up
    assert not Path("/tmp/evil").exists()


def test_unpack_replace_keeps_the_old_slot_when_the_new_package_is_bad(package, tmp_path, signing_key,
                                                                       other_key) -> None:
    dest = tmp_path / "slot"
    unpack(package, dest, signing_key.public_key())
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    bad = _bad(CASES["flipped-byte-in-model.onnx"], package, tmp_path, signing_key, other_key)
    with pytest.raises(PackageError):
        unpack(bad, dest, signing_key.public_key(), replace=True)
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before


def test_verify_of_a_missing_file_raises_package_not_found(tmp_path, signing_key) -> None:
    with pytest.raises(PackageNotFound, match="no package at"):
        verify(tmp_path / "nope.efpkg", signing_key.public_key())


def test_verify_with_an_unreadable_key_file_says_so(package, tmp_path) -> None:
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(SignatureError, match="junk.pem is not a PEM public key"):
        verify(package, tmp_path / "junk.pem")


def test_read_manifest_does_not_verify(package, tmp_path, signing_key, other_key) -> None:
    bad = _bad(CASES["signed-by-another-key"], package, tmp_path, signing_key, other_key)
    assert read_manifest(bad).name == "digits"


def test_read_manifest_of_a_package_without_one(package, tmp_path) -> None:
    bad = rewrite(package, tmp_path / "x.efpkg", drop="manifest.json")
    with pytest.raises(ManifestError, match="x.efpkg: no manifest.json"):
        read_manifest(bad)


@pytest.mark.parametrize("name", ["sub/model.onnx", "../model.onnx", "/abs.onnx", ".hidden", "manifest.json",
                                  "signature", ""])
def test_pack_refuses_unsafe_or_reserved_file_names(name, tmp_path, payload, make_manifest, signing_key) -> None:
    files = {**payload, name: payload["model.bin"]}
    with pytest.raises(UnsafePackageError):
        pack(make_manifest(), files, tmp_path / "out", signing_key)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_pack_refuses_when_a_runtime_file_is_not_given(tmp_path, payload, make_manifest, signing_key) -> None:
    del payload["model.xml"]
    with pytest.raises(ManifestError, match="model.xml"):
        pack(make_manifest(), payload, tmp_path / "out", signing_key)


def test_pack_refuses_a_missing_source_file(tmp_path, payload, make_manifest, signing_key) -> None:
    payload["model.bin"].unlink()
    with pytest.raises(PackageNotFound, match="model.bin"):
        pack(make_manifest(), payload, tmp_path / "out", signing_key)


def test_failed_pack_keeps_the_previous_package_and_leaves_no_temp_file(package, payload, make_manifest,
                                                                        signing_key) -> None:
    before = package.read_bytes()
    payload["model.bin"].unlink()
    with pytest.raises(PackageError):
        pack(make_manifest(), payload, package.parent, signing_key)
    assert package.read_bytes() == before
    assert [p.name for p in package.parent.iterdir()] == [package.name]


def test_an_escaping_member_before_the_manifest_is_refused_before_anything_is_written(package, tmp_path,
                                                                                      signing_key) -> None:
    bad = rewrite(package, tmp_path / "bad.efpkg", prepend=[Member("../escaped", b"x")])
    with pytest.raises(UnsafePackageError):
        unpack(bad, tmp_path / "area" / "slot", signing_key.public_key())
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "area" / "escaped").exists()


def test_file_sha256_matches_hashlib(package) -> None:
    import hashlib

    assert file_sha256(package) == hashlib.sha256(package.read_bytes()).hexdigest()


def test_signature_file_is_json_with_algorithm_key_id_and_base64_ed25519_over_the_stored_manifest(package,
                                                                                                   signing_key) -> None:
    import base64
    import json

    from models.signing import key_id, verify_signature

    members = {m.name: m.data for m in members_of(package)}
    doc = json.loads(members["signature"])
    assert set(doc) == {"format", "algorithm", "key_id", "signature"}
    assert (doc["format"], doc["algorithm"], doc["key_id"]) == (1, "ed25519", key_id(signing_key))
    verify_signature(members["manifest.json"], base64.b64decode(doc["signature"]), signing_key.public_key())
