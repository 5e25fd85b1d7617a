"""The device twin: merging a partial desired state, and deciding whether reported agrees with desired."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from edgefleet.protocol import PipelineConfig, TwinDesired, TwinReported, config_hash
from fleet_server.db.models import Device
from fleet_server.errors import Conflict, InvalidInput
from fleet_server.schemas import TwinPatch
from fleet_server.services import audit
from fleet_server.services.devices import get_device


def merge_desired(current: TwinDesired | None, patch: TwinPatch) -> TwinDesired:
    """Apply `patch` to `current` and return the next revision, validated as a whole."""
    given = patch.model_fields_set
    if not given:
        raise InvalidInput("empty twin patch: give at least one of model, pipeline, camera, properties")
    base: dict[str, Any] = (current or TwinDesired(revision=0)).model_dump(mode="json", exclude={"v", "ts"})
    if "model" in given:
        base["model"] = patch.model.model_dump(mode="json") if patch.model else None
    if "camera" in given:
        base["camera"] = patch.camera
    if "pipeline" in given:
        base["pipeline"] = PipelineConfig().model_dump(mode="json") if patch.pipeline is None else \
            {**base["pipeline"], **patch.pipeline}
    if "properties" in given:
        props = dict(base["properties"]) if patch.properties is not None else {}
        for key, value in (patch.properties or {}).items():
            if value is None:
                props.pop(key, None)
            else:
                props[key] = value
        base["properties"] = props
    base["revision"] = (current.revision if current else 0) + 1
    try:
        return TwinDesired.model_validate(base)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidInput(f"desired state is invalid after merging: {where}: {first.get('msg')}") from None


def in_sync(desired: TwinDesired | None, reported: TwinReported | None) -> bool | None:
    """None when nothing is desired yet; else True when the device reports the desired revision, the desired
    model (by sha256), camera and pipeline config hash. A desired `model`/`camera` of None leaves the
    choice to the agent and is not compared."""
    if desired is None:
        return None
    if reported is None or reported.desired_revision != desired.revision:
        return False
    if desired.model is not None and (reported.model is None or reported.model.sha256 != desired.model.sha256):
        return False
    if desired.camera is not None and reported.camera != desired.camera:
        return False
    return reported.config_hash == config_hash(desired.pipeline)


def desired_of(raw: dict[str, Any] | None) -> TwinDesired | None:
    return TwinDesired.model_validate(raw) if raw else None


def desired_model_sha256(device: Device) -> str | None:
    """The sha256 of the package the device's desired twin names, if any (what OTA and the registry check)."""
    desired = desired_of(device.desired)
    return desired.model.sha256 if desired is not None and desired.model is not None else None


def reported_of(raw: dict[str, Any] | None) -> TwinReported | None:
    return TwinReported.model_validate(raw) if raw else None


def patch_twin(session: Session, device_id: str, patch: TwinPatch, *, actor: str) -> TwinDesired:
    """Merge, validate, bump the revision and store. Publishing is the caller's job (after commit)."""
    device = get_device(session, device_id, for_update=True)
    if not device.active:
        raise Conflict(f"device {device_id} is decommissioned; its twin cannot change")
    desired = merge_desired(desired_of(device.desired), patch)
    device.desired = desired.model_dump(mode="json")
    device.desired_revision = desired.revision
    audit.record(session, actor=actor, action="twin.patch", target=device_id,
                 details={"revision": desired.revision, "patch": patch.model_dump(mode="json", exclude_unset=True)})
    session.flush()
    return desired
