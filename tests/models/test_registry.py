"""The local registry: a directory of packages, indexed from their own manifests; a published name+version always
means the same bytes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from models.errors import IntegrityError, PackageNotFound, RegistryConflict, SignatureError
from models.package import file_sha256, pack
from models.registry import LocalRegistry, int8_version, version_key

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


@pytest.fixture()
def build(tmp_path: Path, payload, make_manifest, signing_key):
    """Pack a variant of the test model; each call writes to its own folder."""
    counter = iter(range(1000))

    def _build(version: str = "1.0.0", *, key=signing_key, **fields) -> Path:
        return pack(make_manifest(version=version, **fields), payload, tmp_path / f"dist{next(counter)}", key)

    return _build


@pytest.fixture()
def registry(tmp_path: Path) -> LocalRegistry:
    return LocalRegistry(tmp_path / "registry")


def test_add_copies_the_package_in_and_describes_it(registry, package, signing_key) -> None:
    entry = registry.add(package, signing_key.public_key())
    assert entry.path == registry.root / "digits-1.0.0.efpkg"
    assert entry.path.read_bytes() == package.read_bytes()
    assert (entry.name, entry.version, entry.precision, entry.deployable) == ("digits", "1.0.0", "fp32", True)
    assert entry.sha256 == file_sha256(package) and entry.size == package.stat().st_size
    assert entry.manifest.labels[0] == "0"
    assert [p.name for p in registry.root.iterdir()] == ["digits-1.0.0.efpkg"]  # no temp files


def test_add_verifies_when_given_a_key_and_stores_nothing_on_failure(registry, build, other_key, signing_key) -> None:
    foreign = build(key=other_key)
    with pytest.raises(SignatureError):
        registry.add(foreign, signing_key.public_key())
    assert list(registry.root.iterdir()) == []


def test_add_without_a_key_still_reads_the_manifest(registry, tmp_path) -> None:
    junk = tmp_path / "junk.efpkg"
    junk.write_bytes(b"garbage" * 100)
    with pytest.raises(IntegrityError):
        registry.add(junk)
    assert list(registry.root.iterdir()) == []


def test_adding_the_same_package_twice_is_harmless(registry, package) -> None:
    assert registry.add(package) == registry.add(package)
    assert len(registry.list()) == 1


def test_a_different_package_under_the_same_name_and_version_is_refused(registry, build) -> None:
    first = registry.add(build(created_at=T0))
    with pytest.raises(RegistryConflict, match="digits 1.0.0 is already in the registry with different contents"):
        registry.add(build(created_at=T0 + timedelta(seconds=1)))
    assert registry.get("digits", "1.0.0").sha256 == first.sha256


def test_list_filters_by_name_and_skips_unreadable_files(registry, build) -> None:
    registry.add(build("1.0.0"))
    registry.add(build("1.0.0", name="faces"))
    (registry.root / "broken-1.efpkg").write_bytes(b"not a tar")
    assert sorted((e.name, e.version) for e in registry.list()) == [("digits", "1.0.0"), ("faces", "1.0.0")]
    assert [e.name for e in registry.list("faces")] == ["faces"]
    assert LocalRegistry(registry.root / "absent").list() == []


def test_latest_is_newest_by_created_at_then_version(registry, build) -> None:
    registry.add(build("2.0.0", created_at=T0))
    registry.add(build("1.5.0", created_at=T0 + timedelta(days=1)))  # a hotfix of an older line, built later
    assert registry.latest("digits").version == "1.5.0"
    registry.add(build("1.10.0", created_at=T0 + timedelta(days=1)))
    registry.add(build("1.9.0", created_at=T0 + timedelta(days=1)))
    assert registry.latest("digits").version == "1.10.0"


def test_latest_by_precision_finds_the_int8_variant(registry, build) -> None:
    registry.add(build("1.0.0", created_at=T0))
    registry.add(build(int8_version("1.0.0"), precision="int8", created_at=T0))
    assert (registry.root / "digits-1.0.0-int8.efpkg").is_file()
    assert registry.latest("digits", "int8").version == "1.0.0-int8"
    assert registry.latest("digits", "fp32").version == "1.0.0"
    with pytest.raises(PackageNotFound, match="no package of faces"):
        registry.latest("faces")


def test_get_and_remove(registry, build) -> None:
    registry.add(build("1.0.0"))
    registry.add(build("1.1.0"))
    assert registry.get("digits", "1.1.0").version == "1.1.0"
    registry.remove("digits", "1.1.0")
    with pytest.raises(PackageNotFound, match="no package digits 1.1.0"):
        registry.get("digits", "1.1.0")
    with pytest.raises(PackageNotFound):
        registry.remove("digits", "1.1.0")
    assert [e.version for e in registry.list()] == ["1.0.0"]


def test_a_package_copied_in_by_hand_is_found_by_its_manifest(registry, build) -> None:
    pkg = build("3.0.0")
    registry.root.mkdir()
    (registry.root / "renamed.efpkg").write_bytes(pkg.read_bytes())
    assert registry.get("digits", "3.0.0").path.name == "renamed.efpkg"


def test_version_key_orders_numbers_as_numbers() -> None:
    assert sorted(["1.10.0", "1.9.0", "1.0.0-int8", "1.0.0", "0.9"], key=version_key) == [
        "0.9", "1.0.0", "1.0.0-int8", "1.9.0", "1.10.0"]
    assert int8_version("1.0.0") == int8_version("1.0.0-int8") == "1.0.0-int8"


def test_a_manifest_with_a_naive_created_at_still_sorts(registry, build) -> None:
    registry.add(build("1.0.0", created_at=T0))
    registry.add(build("2.0.0", created_at=datetime(2026, 11, 2)))  # no time zone: read as UTC
    assert registry.latest("digits").version == "2.0.0"
    assert [e.version for e in registry.list()] == ["1.0.0", "2.0.0"]
