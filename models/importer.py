"""Turn a model trained elsewhere (an Ultralytics export, or any ONNX / OpenVINO IR model with a known task) into
a manifest the agent will run correctly, or refuse it with the reason.

Everything is decided from the file before anything is written, so a refusal leaves no trace. The checks mirror
what the agent does with a package: its backends size the input buffer from the model's own input shape (so every
input dimension must be fixed, batch 1), its preprocessing is the manifest's InputSpec, and its decoders pick the
layout by shape (``yolo``: (1, 4+C, N) or (1, N, 5+C), either orientation; ``ssd``; ``softmax``). A shape the
decoders would read in more than one way is refused rather than risked."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.manifest import InputSpec, Manifest, OpenVinoFiles, OutputSpec, Runtimes
from models.model_probe import ModelFacts, ProbeError, Tensor, probe_onnx, probe_openvino, read_metadata_yaml
from models.ultralytics_meta import TASKS, UNDECODABLE_TASKS, MetadataError, UltralyticsMeta, from_props

# Ultralytics' own predict defaults, so the agent reports what `yolo predict` would.
ULTRALYTICS_OUTPUT = {"score_threshold": 0.25, "nms_iou": 0.7, "max_detections": 300}
ONNX_NAME, XML_NAME, BIN_NAME = "model.onnx", "model.xml", "model.bin"


class ImportRefused(ValueError):
    """The model cannot be run by the agent as it is; the message says why and what would fix it."""


@dataclass
class ImportPlan:
    """The manifest to sign and the files to pack (name in package -> source path)."""

    manifest: Manifest
    files: dict[str, Path]


def read_labels(path: Path) -> list[str]:
    """One label per line (blank lines skipped), or a JSON list, or an Ultralytics-style ``{0: 'a', ...}`` map."""
    from models.ultralytics_meta import parse_names

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportRefused(f"cannot read labels from {path}: {exc}") from None
    stripped = text.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return parse_names(stripped)
        except MetadataError as exc:
            raise ImportRefused(f"{path}: {exc}") from None
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if not labels:
        raise ImportRefused(f"{path} holds no labels")
    return labels


def _facts(model: Path) -> tuple[ModelFacts, UltralyticsMeta, dict[str, Path]]:
    suffix = model.suffix.lower()
    try:
        if suffix == ".onnx":
            facts, files = probe_onnx(model), {ONNX_NAME: model}
            props: dict[str, Any] = dict(facts.props)
        elif suffix == ".xml":
            bin_path = model.with_suffix(".bin")
            if not bin_path.is_file():
                raise ImportRefused(f"{model.name}: the weights {bin_path.name} are not beside it")
            facts, files = probe_openvino(model), {XML_NAME: model, BIN_NAME: bin_path}
            props = {**facts.props, **read_metadata_yaml(model.parent / "metadata.yaml")}
        else:
            raise ImportRefused(f"{model.name}: expected an ONNX model (.onnx) or an OpenVINO IR (.xml + .bin)")
        return facts, from_props(props, facts.labels_list), files
    except (ProbeError, MetadataError) as exc:
        raise ImportRefused(str(exc)) from None


def _task(meta: UltralyticsMeta, requested: str | None, where: str) -> str:
    if meta.task in UNDECODABLE_TASKS:
        raise ImportRefused(f"{where} is an Ultralytics '{meta.task}' model; the agent decodes only detection and "
                            "classification outputs so far")
    if meta.end2end:
        raise ImportRefused(f"{where} is an end-to-end (NMS-free) export whose rows are x1, y1, x2, y2, score, class; "
                            "the agent's yolo decoding needs cx, cy, w, h and class scores: re-export with "
                            "end2end=False")
    own = TASKS.get(meta.task) if meta.task else None
    if own and requested and own != requested:
        raise ImportRefused(f"{where} says it is a '{meta.task}' model, not {requested}")
    task = own or requested
    if task is None and meta.is_ultralytics:
        task = "detection"  # YOLOv5-repo exports carry names and stride only, and are all detectors
    if task is None:
        raise ImportRefused(f"{where} does not say what it does: pass --task detection|classification")
    return task


def _input_spec(facts: ModelFacts, meta: UltralyticsMeta, task: str, where: str) -> InputSpec:
    if len(facts.inputs) != 1:
        names = ", ".join(t.name for t in facts.inputs) or "none"
        raise ImportRefused(f"{where} has {len(facts.inputs)} inputs ({names}); the agent feeds one image input")
    inp = facts.inputs[0]
    if len(inp.shape) != 4:
        raise ImportRefused(f"{where}: input {inp.name} has shape {_show(inp.shape)}; an image input has 4 dims")
    if not inp.static:
        size = f" (its metadata says imgsz {meta.imgsz[0]}x{meta.imgsz[1]})" if meta.imgsz else " and no imgsz"
        raise ImportRefused(f"{where}: input {inp.name} has dynamic dimensions {_show(inp.shape)}{size}; the agent "
                            "sizes its input buffers from the model itself, so re-export with a fixed size "
                            "(Ultralytics: dynamic=False)")
    if inp.shape[0] != 1:
        raise ImportRefused(f"{where}: input batch is {inp.shape[0]}; the agent runs one frame at a time "
                            "(re-export with batch=1)")
    if inp.dtype not in ("float32", "uint8"):
        raise ImportRefused(f"{where}: input {inp.name} is {inp.dtype}; the agent feeds float32 or uint8 "
                            "(Ultralytics: export without half=True)")
    layout = "NCHW" if inp.shape[1] in (1, 3) else "NHWC" if inp.shape[3] in (1, 3) else None
    if layout is None:
        raise ImportRefused(f"{where}: input shape {_show(inp.shape)} has no 1- or 3-channel axis")
    channels = inp.shape[1] if layout == "NCHW" else inp.shape[3]
    spec = InputSpec(shape=list(inp.shape), layout=layout, color_order="RGB" if channels == 3 else "GRAY",
                     scale=1.0 / 255.0 if inp.dtype == "float32" else 1.0, mean=[0.0], std=[1.0],
                     dtype=inp.dtype, resize="letterbox" if task == "detection" else "stretch")
    if meta.imgsz and (spec.height, spec.width) != meta.imgsz:
        raise ImportRefused(f"{where}: input is {spec.height}x{spec.width} but its metadata says imgsz "
                            f"{meta.imgsz[0]}x{meta.imgsz[1]}")
    return spec


def _show(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def yolo_head(shape: tuple[int | None, ...], classes: int) -> str | None:
    """The agent's reading of a single YOLO output: "v8" (4 + C values per box), "v5" (5 + C, objectness), or None
    when it does not fit or fits both orientations (the agent would pick one and might be wrong)."""
    if len(shape) != 3 or shape[0] != 1 or None in shape:
        return None
    a, b = shape[1], shape[2]
    widths = (4 + classes, 5 + classes)
    if a in widths and b in widths:
        return None
    width = b if b in widths else a if a in widths else None
    if width is None:
        return None
    return "v8" if width == 4 + classes else "v5"


def _ssd_layout(outputs: list[Tensor]) -> bool:
    first = outputs[0].shape
    if len(outputs) == 1:
        return len(first) == 4 and first[-1] == 7
    return len(outputs) >= 3 and len(first) == 3 and first[-1] == 4


def _output_spec(facts: ModelFacts, meta: UltralyticsMeta, task: str, labels: list[str],
                 where: str) -> tuple[OutputSpec, dict[str, Any]]:
    shapes = ", ".join(_show(o.shape) for o in facts.outputs) or "none"
    if task == "classification":
        out = facts.outputs[0] if len(facts.outputs) == 1 else None
        size = None if out is None or not out.static else int(_product(out.shape[1:]))
        if out is None or len(out.shape) < 2 or out.shape[0] != 1 or size != len(labels):
            raise ImportRefused(f"{where}: output(s) {shapes} are not one (1, {len(labels)}) score vector for "
                                f"{len(labels)} labels")
        return OutputSpec(decoding="softmax"), {}
    head = yolo_head(facts.outputs[0].shape, len(labels)) if len(facts.outputs) == 1 else None
    if head is not None:
        if meta.task is not None and head != "v8":
            raise ImportRefused(f"{where}: an Ultralytics detect export with {len(labels)} labels gives "
                                f"(1, {4 + len(labels)}, N), not {shapes}")
        extra = ULTRALYTICS_OUTPUT if meta.is_ultralytics else {}
        return OutputSpec(decoding="yolo", **extra), {"yolo_head": head}
    if not meta.is_ultralytics and _ssd_layout(facts.outputs):
        return OutputSpec(decoding="ssd"), {}
    raise ImportRefused(f"{where}: output(s) {shapes} match no decoding the agent knows for {len(labels)} labels "
                        f"(yolo: one (1, {4 + len(labels)}, N) or (1, N, {5 + len(labels)}) tensor, unambiguous; "
                        "ssd: (1, 1, N, 7) or boxes, scores, classes)")


def _product(dims: tuple[int | None, ...]) -> int:
    total = 1
    for d in dims:
        total *= d or 0
    return total


_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


def default_name(model: Path) -> str:
    """The file's stem made into a valid package name (``yolov8n.onnx`` -> ``yolov8n``)."""
    stem = _NAME_CHARS.sub("-", model.stem).lstrip("._-")[:128]
    return stem or "imported-model"


def plan_import(model: Path, *, task: str | None = None, labels: list[str] | None = None, name: str | None = None,
                version: str = "1.0.0") -> ImportPlan:
    """Read ``model`` and decide its manifest; raise ImportRefused (nothing written) when the agent could not run
    it as it is. ``labels`` override the model's own names; ``task`` is needed only when the model does not say."""
    model = Path(model)
    if not model.is_file():
        raise FileNotFoundError(f"no model file at {model}")
    where = model.name
    facts, meta, files = _facts(model)
    task = _task(meta, task, where)
    labels = labels if labels is not None else meta.names
    if not labels:
        raise ImportRefused(f"{where} carries no class names: pass --labels FILE")
    spec = _input_spec(facts, meta, task, where)
    output, notes = _output_spec(facts, meta, task, labels, where)
    runtimes = (Runtimes(onnx=ONNX_NAME) if facts.format == "onnx"
                else Runtimes(openvino=OpenVinoFiles(xml=XML_NAME, bin=BIN_NAME)))
    provenance: dict[str, Any] = {"imported_from": model.name, "source": "ultralytics" if meta.is_ultralytics
                                  else "external", **notes}
    for key in ("task", "stride", "version"):
        if getattr(meta, key) is not None:
            provenance[f"ultralytics_{key}"] = getattr(meta, key)
    try:
        manifest = Manifest(name=name or default_name(model), version=version, task=task, input=spec,
                            output=output, labels=labels, runtimes=runtimes, training=provenance)
    except ValueError as exc:  # pydantic's ValidationError: a bad --name or --version
        first = exc.errors()[0] if hasattr(exc, "errors") else {"loc": (), "msg": str(exc)}
        raise ImportRefused(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    return ImportPlan(manifest, files)
