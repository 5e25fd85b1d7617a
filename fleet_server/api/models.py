"""The model registry: upload a signed package (operator), list and show them (viewer), delete one (admin).

An upload is the package itself as the raw request body, streamed to disk as it arrives (never held in memory):
the route is synchronous, so the store writes from a worker thread, and pulls each chunk from the request's
stream on the event loop. Its size limit is `max_model_bytes` (fleet_server.app.LARGER_BODIES), not the API's
small default.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

import anyio.from_thread
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from fleet_server.api.deps import AdminKey, FleetDep, OperatorKey, SessionDep, ViewerKey
from fleet_server.api.errors import responses
from fleet_server.db.models import ModelPackage
from fleet_server.errors import InvalidInput, NotFound
from fleet_server.model_store import ModelStore
from fleet_server.services import apikeys
from fleet_server.services import models as registry
from models.manifest import Manifest

_UPLOAD_SAYS = {
    409: "this name and version are already published with other contents",
    413: "package over the server's size limit for uploads (setting max_model_bytes)",
    422: "not a package signed by the fleet's model-signing key (unsigned, altered, another key's, not a package)",
}
_NOT_HERE = "no model with this name and version in the registry"
# A name and a version as a manifest allows them (length and characters), to check those from a path or query.
_AS_IN_MANIFEST = {field: TypeAdapter(Annotated[str, *Manifest.model_fields[field].metadata])
                   for field in ("name", "version")}
_NAME_PATTERN = next(m.pattern for m in Manifest.model_fields["name"].metadata if getattr(m, "pattern", None))
_PACKAGE_BODY = {"requestBody": {"required": True, "description": "the .efpkg file, as it is",
                                 "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                     "format": "binary"}}}}}


def _documented(says: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """`responses()` for these codes, each described as it applies to the operation."""
    documented = responses(*says)
    for code, description in says.items():
        documented[code] = {**documented[code], "description": description}
    return documented


router = APIRouter(prefix="/models", tags=["models"], responses=responses(401, 403, 413))


class ModelSummary(BaseModel):
    name: str
    version: str
    sha256: str = Field(description="of the whole package file: what a desired twin names")
    size: int = Field(description="bytes")
    precision: str = Field(description="fp32 | int8")
    task: str
    deployable: bool = Field(description="false when assessment or quantization flagged it (see flags)")
    flags: list[str]
    uploaded_by: str
    uploaded_at: datetime


class ModelDetail(ModelSummary):
    created_at: datetime = Field(description="when training built it (the manifest's created_at)")
    metrics: dict[str, Any] = Field(description="assessment: accuracy, precision, recall, f1, auc (fractions 0-1)")
    quantization_delta: float | None = Field(description="INT8 minus FP32 accuracy, in points (0-100); null when "
                                                         "the package was not quantized")
    benchmark: dict[str, Any] = Field(description="median latency ms per runtime on the build machine")
    manifest: dict[str, Any] = Field(description="the package's whole manifest, as signed")


def _summary_fields(row: ModelPackage) -> dict[str, Any]:
    return {"name": row.name, "version": row.version, "sha256": row.sha256, "size": row.size,
            "precision": row.precision, "task": row.task, "deployable": row.deployable,
            "flags": list(row.manifest.get("flags") or []), "uploaded_by": row.uploaded_by,
            "uploaded_at": row.uploaded_at}


def _detail(row: ModelPackage) -> ModelDetail:
    manifest = row.manifest
    quantization = manifest.get("quantization") or {}
    return ModelDetail(**_summary_fields(row), created_at=manifest["created_at"],
                       metrics=manifest.get("metrics") or {}, quantization_delta=quantization.get("accuracy_delta"),
                       benchmark=manifest.get("benchmark") or {}, manifest=manifest)


def get_store(fleet: FleetDep) -> ModelStore:
    return ModelStore.in_state_dir(fleet.settings.state_dir)


StoreDep = Annotated[ModelStore, Depends(get_store)]


def _possible(field: str, value: str) -> bool:
    """Whether a manifest could have this name or version. One it could not is simply not in the registry,
    and is never compared in a query (PostgreSQL cannot compare text holding a NUL character: a 500)."""
    try:
        _AS_IN_MANIFEST[field].validate_python(value)
    except ValidationError:
        return False
    return True


def _name_in_path(name: str) -> str:
    if not _possible("name", name):
        raise NotFound(f"no model {name!r} in the registry")
    return name


def _version_in_path(version: str) -> str:
    if not _possible("version", version):
        raise NotFound(f"no version {version!r} in the registry")
    return version


ModelName = Annotated[str, Depends(_name_in_path)]
ModelVersion = Annotated[str, Depends(_version_in_path)]


def _body_chunks(request: Request) -> Iterator[bytes]:
    """The request body as it arrives, for code running in a worker thread."""
    stream = request.stream()

    async def next_chunk() -> bytes | None:
        try:
            return await stream.__anext__()
        except StopAsyncIteration:
            return None

    try:
        while (chunk := anyio.from_thread.run(next_chunk)) is not None:
            if chunk:
                yield chunk
    finally:
        anyio.from_thread.run(stream.aclose)


@router.post("", response_model=ModelDetail, status_code=201, openapi_extra=_PACKAGE_BODY,
             responses={200: {"model": ModelDetail, "description": "these exact bytes are already in the registry"},
                        **_documented(_UPLOAD_SAYS)})
def upload_model(request: Request, response: Response, session: SessionDep, fleet: FleetDep, store: StoreDep,
                 key: OperatorKey) -> ModelDetail:
    """Verify a signed package against the fleet's model-signing key and add it to the registry. Uploading the
    same bytes again answers 200 with what is there; other bytes under a published name and version, 409."""
    if request.headers.get("content-type", "").lower().startswith("multipart/"):
        raise InvalidInput("send the package as the raw request body (Content-Type: application/octet-stream), "
                           "not as a form")
    row, created = registry.upload(session, store, _body_chunks(request), fleet.signing_public_key,
                                   actor=apikeys.actor_of(key))
    response.status_code = 201 if created else 200
    return _detail(row)


@router.get("", response_model=list[ModelSummary], responses=responses(422))
def list_models(session: SessionDep, _key: ViewerKey,
                name: Annotated[str | None, Query(max_length=128, pattern=_NAME_PATTERN,
                                                  description="only this model")] = None
                ) -> list[ModelSummary]:
    return [ModelSummary(**_summary_fields(row)) for row in registry.list_packages(session, name=name)]


@router.get("/{name}/{version}", response_model=ModelDetail, responses=_documented({404: _NOT_HERE}))
def get_model(session: SessionDep, _key: ViewerKey, name: ModelName, version: ModelVersion) -> ModelDetail:
    """One package: its manifest, assessment metrics, INT8 accuracy delta, benchmark, size and who uploaded it."""
    return _detail(registry.get_package(session, name, version))


@router.delete("/{name}/{version}", response_model=ModelDetail,
               responses=_documented({404: _NOT_HERE, 409: "an active device's desired twin or a running or paused "
                                                               "rollout still names the package"}))
def delete_model(session: SessionDep, store: StoreDep, key: AdminKey, name: ModelName,
                 version: ModelVersion) -> ModelDetail:
    """Remove a package from the registry and its file from the server; refused while a device's desired twin
    or a running or paused rollout still names it."""
    return _detail(registry.delete(session, store, name, version, actor=apikeys.actor_of(key)))
