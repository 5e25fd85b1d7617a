"""The server's package store on disk: content-addressed, verified before it is kept, nothing left of a refusal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet_server.model_store import ModelStore, PackageRefused
from models.package import file_sha256
from models.signing import public_key_pem
from tests.fleet_server.model_packages import Packer, flipped_byte, garbage, unsigned


@pytest.fixture()
def packer(tmp_path: Path) -> Packer:
    return Packer.stranger(tmp_path / "work")  # a fleet key of the test's own


@pytest.fixture()
def store(tmp_path: Path) -> ModelStore:
    return ModelStore.in_state_dir(tmp_path / "server")


def chunks(path: Path, size: int = 1000) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(size):
            yield chunk


def stored_files(store: ModelStore) -> list[str]:
    return sorted(p.name for p in store.root.iterdir())  # temp files included: none may be left


def test_a_package_is_stored_under_its_sha256_and_found_by_it(store: ModelStore, packer: Packer) -> None:
    package = packer.make()
    sha, size, manifest = store.add_from_stream(chunks(package), public_key_pem(packer.key))
    assert sha == file_sha256(package) and size == package.stat().st_size
    assert (manifest.name, manifest.version) == ("tiny", "1.0.0")
    assert store.root == store.root.parent / "packages"
    path = store.path(sha)
    assert path == store.root / f"{sha}.efpkg" and path.read_bytes() == package.read_bytes()
    assert stored_files(store) == [f"{sha}.efpkg"]


def test_adding_the_same_bytes_again_keeps_one_file(store: ModelStore, packer: Packer) -> None:
    package = packer.make()
    first = store.add_from_stream(chunks(package), packer.key)
    inode = store.path(first[0]).stat().st_ino
    second = store.add_from_stream(chunks(package, 7), packer.key)
    assert second[:2] == first[:2]
    assert stored_files(store) == [f"{first[0]}.efpkg"] and store.path(first[0]).stat().st_ino == inode


@pytest.mark.parametrize("spoil", ["flipped byte", "unsigned", "another key", "garbage", "empty"])
def test_a_refused_package_leaves_nothing(store: ModelStore, packer: Packer, tmp_path: Path, spoil: str) -> None:
    good = packer.make()
    bad = {"flipped byte": lambda: flipped_byte(good, tmp_path / "bad.efpkg"),
           "unsigned": lambda: unsigned(good, tmp_path / "bad.efpkg"),
           "another key": lambda: Packer.stranger(tmp_path / "other").make(),
           "garbage": lambda: garbage(tmp_path / "bad.efpkg"),
           "empty": lambda: (tmp_path / "empty.efpkg", (tmp_path / "empty.efpkg").write_bytes(b""))[0]}[spoil]()
    with pytest.raises(PackageRefused) as refused:
        store.add_from_stream(chunks(bad), packer.key)
    reason = str(refused.value)
    assert reason.startswith("package refused: ") and ".upload-" not in reason
    expected = {"flipped byte": "corrupt or altered", "unsigned": "unsigned", "another key": "not by the trusted key",
                "garbage": "not a readable package", "empty": "not a readable package archive (empty file)"}[spoil]
    assert expected in reason
    assert stored_files(store) == []


def test_a_stream_that_breaks_off_leaves_nothing(store: ModelStore, packer: Packer) -> None:
    def broken() -> Iterator[bytes]:
        yield packer.make().read_bytes()[:2000]
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        store.add_from_stream(broken(), packer.key)
    assert stored_files(store) == []


def test_path_answers_only_for_stored_packages(store: ModelStore, packer: Packer) -> None:
    sha = store.add_from_stream(chunks(packer.make()), packer.key)[0]
    assert store.path(sha.upper()) is None  # names are lowercase hex
    assert store.path("0" * 64) is None
    assert store.path("../" + sha) is None and store.path(sha[:63]) is None
    (store.root / ".upload-abc.tmp").write_bytes(b"half")
    assert store.path(".upload-abc.tmp") is None


def test_remove_deletes_the_file(store: ModelStore, packer: Packer) -> None:
    sha = store.add_from_stream(chunks(packer.make()), packer.key)[0]
    assert store.remove(sha) is True
    assert store.path(sha) is None and stored_files(store) == []
    assert store.remove(sha) is False
