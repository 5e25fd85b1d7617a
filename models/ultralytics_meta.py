"""The metadata an Ultralytics export carries about itself, read from plain strings.

An ONNX export keeps it in ``metadata_props``, an OpenVINO IR export in the xml's ``rt_info`` (and a
``metadata.yaml`` beside it); in all three the values are strings as Ultralytics wrote them: ``names`` is a Python
dict literal, ``imgsz`` a list literal, ``end2end`` a bool literal. They come from a file someone downloaded, so they
are parsed with ``ast.literal_eval`` (literals only), never evaluated."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Ultralytics' own task names -> the manifest's; the others have outputs the agent cannot decode yet.
TASKS = {"detect": "detection", "classify": "classification"}
UNDECODABLE_TASKS = ("segment", "pose", "obb")


class MetadataError(ValueError):
    """A metadata value is present but unreadable: the import must stop rather than guess."""


@dataclass(frozen=True)
class UltralyticsMeta:
    """What the agent's manifest needs from an export's metadata; None where the export did not say."""

    names: list[str] | None = None
    imgsz: tuple[int, int] | None = None
    task: str | None = None
    stride: int | None = None
    batch: int | None = None
    end2end: bool = False
    version: str | None = None

    @property
    def is_ultralytics(self) -> bool:
        """Ultralytics-package exports name their task; YOLOv5-repo exports carry only stride and names."""
        return self.task is not None or (self.names is not None and self.stride is not None)


def _literal(key: str, text: Any) -> Any:
    if not isinstance(text, str):
        return text  # a YAML loader already gave a value
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise MetadataError(f"metadata {key!r} is not a Python literal ({exc.__class__.__name__}): "
                            f"{text[:80]!r}") from None


def parse_names(text: Any) -> list[str]:
    """``{0: 'person', 1: 'bicycle'}`` (or a list) -> labels by class index; the indices must be 0..C-1, since the
    agent maps output column i to label i."""
    value = _literal("names", text)
    if isinstance(value, (list, tuple)):
        value = dict(enumerate(value))
    if not isinstance(value, dict) or not value:
        raise MetadataError(f"metadata 'names' must be a non-empty dict or list, got {type(value).__name__}")
    try:
        indices = sorted(int(k) for k in value)
    except (TypeError, ValueError):
        raise MetadataError("metadata 'names' has a key that is not a class index") from None
    if indices != list(range(len(indices))):
        raise MetadataError(f"metadata 'names' indices are not 0..{len(indices) - 1}")
    by_index = {int(k): v for k, v in value.items()}
    return [str(by_index[i]) for i in indices]


def parse_imgsz(text: Any) -> tuple[int, int]:
    """``[640, 640]`` (height, width) or a single ``640``."""
    value = _literal("imgsz", text)
    if isinstance(value, int):
        value = [value, value]
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, int) and v > 0 for v in value)):
        raise MetadataError(f"metadata 'imgsz' must be [height, width] of positive integers, got {value!r}")
    return int(value[0]), int(value[1])


def _int_or_none(key: str, text: Any) -> int | None:
    if text is None:
        return None
    value = _literal(key, text)
    if isinstance(value, (list, tuple)) and value:
        value = max(value)  # newer exports may list a stride per level
    if not isinstance(value, (int, float)):
        raise MetadataError(f"metadata {key!r} must be a number, got {value!r}")
    return int(value)


def from_props(props: Mapping[str, Any], labels_fallback: list[str] | None = None) -> UltralyticsMeta:
    """Read the keys Ultralytics writes; unknown keys are ignored. ``labels_fallback``: the OpenVINO exporter's
    ``model_info/labels`` list, used only when ``names`` is absent."""
    names = parse_names(props["names"]) if props.get("names") is not None else labels_fallback
    imgsz = parse_imgsz(props["imgsz"]) if props.get("imgsz") is not None else None
    task = props.get("task")
    if task is not None:
        task = str(task).strip()
        if task not in TASKS and task not in UNDECODABLE_TASKS:
            raise MetadataError(f"metadata 'task' is {task!r}, not one of {', '.join([*TASKS, *UNDECODABLE_TASKS])}")
    end2end = props.get("end2end")
    return UltralyticsMeta(names=names, imgsz=imgsz, task=task, stride=_int_or_none("stride", props.get("stride")),
                           batch=_int_or_none("batch", props.get("batch")),
                           end2end=bool(_literal("end2end", end2end)) if end2end is not None else False,
                           version=str(props["version"]) if props.get("version") is not None else None)
