"""The model registry over HTTP, on SQLite and PostgreSQL: real packages signed with the key the server trusts
(and the ways one can be wrong), stored on disk and indexed in the database, listed, shown and deleted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fleet_server.app import create_app
from fleet_server.model_store import ModelStore
from fleet_server.settings import ServerSettings
from models.package import file_sha256
from tests.fleet_server.conftest import Api
from tests.fleet_server.model_packages import Packer, flipped_byte, garbage, unsigned

MODELS = "/api/v1/models"
OCTETS = {"Content-Type": "application/octet-stream"}


@pytest.fixture()
def packer(api: Api, tmp_path: Path) -> Packer:
    return Packer.for_server(api.fleet.settings.signing_key_path(), tmp_path / "work")


def upload(api: Api, package: Path, key: str | None = None):  # noqa: ANN201 - httpx.Response
    with open(package, "rb") as fh:
        return api.client.post(MODELS, content=fh.read(), headers={**api.headers(key), **OCTETS})


def listed(api: Api) -> list[dict]:
    r = api.client.get(MODELS, headers=api.headers())
    assert r.status_code == 200, r.text
    return r.json()


def store_files(api: Api) -> list[str]:
    """Every file in the store, temp files included."""
    root = ModelStore.in_state_dir(api.fleet.settings.state_dir).root
    return sorted(p.name for p in root.iterdir())


def audit(api: Api, action: str) -> list[dict]:
    return api.client.get("/api/v1/audit", params={"action": action}, headers=api.headers()).json()


def test_upload_then_list_and_show(api: Api, packer: Packer) -> None:
    package = packer.make("2.0.0-int8", int8=True)
    sha = file_sha256(package)
    r = upload(api, package)
    assert r.status_code == 201, r.text
    view = r.json()
    assert (view["name"], view["version"], view["sha256"]) == ("tiny", "2.0.0-int8", sha)
    assert view["size"] == package.stat().st_size and view["precision"] == "int8" and view["task"] == "classification"
    assert view["deployable"] is True and view["quantization_delta"] == -0.5
    assert view["uploaded_by"].startswith("apikey:") and view["manifest"]["files"]
    assert store_files(api) == [f"{sha}.efpkg"]
    assert ModelStore.in_state_dir(api.fleet.settings.state_dir).path(sha).read_bytes() == package.read_bytes()

    assert [(m["name"], m["version"], m["sha256"]) for m in listed(api)] == [("tiny", "2.0.0-int8", sha)]
    assert "manifest" not in listed(api)[0]
    shown = api.client.get(f"{MODELS}/tiny/2.0.0-int8", headers=api.headers(api.key("viewer")))
    assert shown.status_code == 200
    detail = shown.json()
    assert detail["metrics"] == {"accuracy": 0.97, "f1_macro": 0.96}
    assert detail["benchmark"] == {"onnxruntime": {"CPU": 0.2}} and detail["manifest"]["quantization"]
    assert detail["uploaded_at"] == view["uploaded_at"] and detail["uploaded_by"] == view["uploaded_by"]
    [entry] = audit(api, "model.upload")
    assert entry["target"] == sha and entry["details"]["version"] == "2.0.0-int8"


def test_a_flagged_package_is_stored_as_not_deployable(api: Api, packer: Packer) -> None:
    r = upload(api, packer.make(flags=["int8 accuracy drop 3.1 points over the 1.0 threshold"]))
    assert r.status_code == 201
    assert r.json()["deployable"] is False and r.json()["flags"] == ["int8 accuracy drop 3.1 points over the 1.0 "
                                                                     "threshold"]


def test_list_filters_by_name(api: Api, packer: Packer) -> None:
    for name, version in (("tiny", "1"), ("tiny", "2"), ("other", "1")):
        assert upload(api, packer.make(version, name=name)).status_code == 201
    assert [m["name"] for m in listed(api)] == ["other", "tiny", "tiny"]
    only = api.client.get(MODELS, params={"name": "tiny"}, headers=api.headers()).json()
    assert [m["version"] for m in only] == ["1", "2"]
    for impossible in ("no\x00pe", "../tiny", ""):
        r = api.client.get(MODELS, params={"name": impossible}, headers=api.headers())
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "name"]
    assert api.client.get(MODELS, params={"name": "none"}, headers=api.headers()).json() == []


def test_the_same_bytes_again_are_200_and_change_nothing(api: Api, packer: Packer) -> None:
    package = packer.make()
    first = upload(api, package).json()
    again = upload(api, package)
    assert again.status_code == 200 and again.json() == first
    assert len(listed(api)) == 1 and len(audit(api, "model.upload")) == 1
    assert store_files(api) == [f"{first['sha256']}.efpkg"]


def test_other_bytes_under_a_published_version_are_409_and_not_kept(api: Api, packer: Packer) -> None:
    original = upload(api, packer.make()).json()
    r = upload(api, packer.make(extra=b"\x00retrained"))
    assert r.status_code == 409 and r.json()["error"] == "Conflict"
    assert original["sha256"] in r.json()["detail"] and "new version" in r.json()["detail"]
    assert [m["sha256"] for m in listed(api)] == [original["sha256"]]
    assert store_files(api) == [f"{original['sha256']}.efpkg"]


@pytest.mark.parametrize("spoil,reason", [
    ("flipped byte", "corrupt or altered"), ("unsigned", "unsigned"), ("another key", "not by the trusted key"),
    ("garbage", "not a readable package archive"),
])
def test_a_package_the_fleet_key_did_not_sign_is_422_and_nothing_is_kept(api: Api, packer: Packer, tmp_path: Path,
                                                                         spoil: str, reason: str) -> None:
    good = packer.make()
    bad = {"flipped byte": lambda: flipped_byte(good, tmp_path / "bad.efpkg"),
           "unsigned": lambda: unsigned(good, tmp_path / "bad.efpkg"),
           "another key": lambda: Packer.stranger(tmp_path / "stranger").make(),
           "garbage": lambda: garbage(tmp_path / "bad.efpkg")}[spoil]()
    r = upload(api, bad)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "PackageRefused" and reason in body["detail"] and "upload" in body["detail"]
    assert listed(api) == [] and store_files(api) == [] and audit(api, "model.upload") == []


def test_a_form_upload_is_told_to_send_the_raw_package(api: Api, packer: Packer) -> None:
    with open(packer.make(), "rb") as fh:
        r = api.client.post(MODELS, files={"package": fh}, headers=api.headers())
    assert r.status_code == 422 and "application/octet-stream" in r.json()["detail"]
    assert listed(api) == [] and store_files(api) == []


def test_roles_operator_uploads_viewer_reads_admin_deletes(api: Api, packer: Packer) -> None:
    viewer, operator = api.key("viewer"), api.key("operator")
    package = packer.make()
    assert upload(api, package, viewer).status_code == 403
    assert store_files(api) == []  # refused before the body was read
    assert upload(api, package, operator).status_code == 201
    assert api.client.get(MODELS, headers=api.headers(viewer)).status_code == 200
    assert api.client.delete(f"{MODELS}/tiny/1.0.0", headers=api.headers(operator)).status_code == 403
    assert api.client.post(MODELS, content=package.read_bytes(), headers=OCTETS).status_code == 401


def test_delete_removes_the_row_and_the_file(api: Api, packer: Packer) -> None:
    sha = upload(api, packer.make()).json()["sha256"]
    r = api.client.delete(f"{MODELS}/tiny/1.0.0", headers=api.headers())
    assert r.status_code == 200 and r.json()["sha256"] == sha
    assert listed(api) == [] and store_files(api) == []
    assert api.client.get(f"{MODELS}/tiny/1.0.0", headers=api.headers()).status_code == 404
    assert api.client.delete(f"{MODELS}/tiny/1.0.0", headers=api.headers()).status_code == 404
    [entry] = audit(api, "model.delete")
    assert entry["target"] == sha and entry["details"] == {"name": "tiny", "version": "1.0.0"}
    assert upload(api, packer.make()).status_code == 201  # the version is free again


def test_delete_is_refused_while_a_devices_desired_twin_names_the_package(api: Api, packer: Packer) -> None:
    view = upload(api, packer.make()).json()
    device_id = api.enroll(api.token()).json()["device_id"]
    ref = {"name": view["name"], "version": view["version"], "sha256": view["sha256"]}
    assert api.client.patch(f"/api/v1/devices/{device_id}/twin", json={"model": ref},
                            headers=api.headers()).status_code == 200
    r = api.client.delete(f"{MODELS}/tiny/1.0.0", headers=api.headers())
    assert r.status_code == 409 and device_id in r.json()["detail"]
    assert len(listed(api)) == 1 and store_files(api) == [f"{view['sha256']}.efpkg"]
    assert audit(api, "model.delete") == []

    api.client.delete(f"/api/v1/devices/{device_id}", headers=api.headers())  # decommissioned: no longer a user
    assert api.client.delete(f"{MODELS}/tiny/1.0.0", headers=api.headers()).status_code == 200


@pytest.mark.parametrize("path", ["nope/1.0.0", "tiny/9.9.9", "..%2Ftiny/1.0.0", "tiny/1%000", "ti%00ny/1"])
def test_unknown_or_impossible_names_are_404(api: Api, packer: Packer, path: str) -> None:
    assert upload(api, packer.make()).status_code == 201
    for method in ("GET", "DELETE"):
        r = api.client.request(method, f"{MODELS}/{path}", headers=api.headers())
        assert r.status_code == 404 and r.json()["error"] == "NotFound", (method, path)
    assert len(listed(api)) == 1


# -------------------------------------------------------------------------------------------- size limit

@pytest.fixture()
def small_api(settings: ServerSettings) -> Iterator[Api]:
    """A server whose uploads may be 16 KiB at most; the rest of the API keeps its own limit."""
    with TestClient(create_app(settings.model_copy(update={"max_model_bytes": 16 * 1024}), start_mqtt=False)) as c:
        yield Api(c)


def test_a_package_over_max_model_bytes_is_413_declared_or_streamed_and_nothing_is_kept(small_api: Api,
                                                                                       tmp_path: Path) -> None:
    api = small_api
    big = Packer.for_server(api.fleet.settings.signing_key_path(), tmp_path / "work").make(extra=b"\x01" * 40_000)
    declared = upload(api, big)
    assert declared.status_code == 413 and "16384" in declared.json()["detail"]

    def streamed() -> Iterator[bytes]:  # httpx sends a generator chunked, with no Content-Length
        data = big.read_bytes()
        for start in range(0, len(data), 4096):
            yield data[start:start + 4096]

    r = api.client.post(MODELS, content=streamed(), headers={**api.headers(), **OCTETS})
    assert r.status_code == 413 and r.json()["error"] == "PayloadTooLarge"
    assert listed(api) == [] and store_files(api) == []
    small = Packer.for_server(api.fleet.settings.signing_key_path(), tmp_path / "work").make("2")
    assert upload(api, small).status_code == 201  # under the limit: still served


def test_the_default_limit_lets_a_package_over_the_api_body_limit_through(api: Api, packer: Packer) -> None:
    package = packer.make(extra=b"\x02" * (api.fleet.settings.max_body_bytes + 4096))
    r = upload(api, package)
    assert r.status_code == 201, r.text
    assert r.json()["size"] > api.fleet.settings.max_body_bytes
