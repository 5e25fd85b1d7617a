"""Turn the exported, quantized, measured model into two signed packages: ``NAME-VERSION.efpkg`` (FP32) and
``NAME-VERSION-int8.efpkg`` (INT8: the onnxruntime QDQ .onnx and the NNCF OpenVINO IR).

Everything the agent needs to run the model (input spec, labels, output decoding, runtime files) and everything a
person needs to trust it (metrics, quantization cost, latency, data lineage, training settings) goes in the manifest.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.manifest import InputSpec, Manifest, OpenVinoFiles, OutputSpec, Runtimes
from models.registry import int8_version  # same name, version + "-int8": digits-1.0.0-int8.efpkg
from training.quantize import QuantizationResult, worst

ONNX_FILE = "model.onnx"
OV_XML_FILE = "model.xml"
OV_BIN_FILE = "model.bin"  # OpenVINO finds the weights next to the xml by stem, so the names must pair up


@dataclass
class ModelFiles:
    onnx: Path
    xml: Path
    bin: Path

    def mapping(self) -> dict[str, Path]:
        return {ONNX_FILE: Path(self.onnx), OV_XML_FILE: Path(self.xml), OV_BIN_FILE: Path(self.bin)}


@dataclass
class PackageInputs:
    """What package building needs; the pipeline fills it from the earlier steps."""

    name: str
    version: str
    spec: InputSpec
    labels: list[str]
    decoding: str
    metrics: dict[str, Any]
    fp32: ModelFiles
    int8: ModelFiles
    quantization: Sequence[QuantizationResult]
    benchmark_fp32: dict[str, Any]
    benchmark_int8: dict[str, Any]
    data_fingerprint: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)


def host_info(threads: int) -> dict[str, Any]:
    """Where the latencies were measured: they only mean something next to the machine that produced them."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": threads, "batch": 1}


def _jsonable_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(metrics, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def build_manifests(inp: PackageInputs) -> tuple[Manifest, Manifest]:
    """The FP32 and INT8 manifests (without file hashes: ``pack`` fills those in)."""
    runtimes = Runtimes(onnx=ONNX_FILE, openvino=OpenVinoFiles(xml=OV_XML_FILE, bin=OV_BIN_FILE))
    output = OutputSpec(decoding=inp.decoding)  # type: ignore[arg-type]
    common: dict[str, Any] = dict(
        name=inp.name, task="classification", input=inp.spec, output=output, labels=list(inp.labels),
        runtimes=runtimes, data_fingerprint=inp.data_fingerprint, training=inp.training,
    )
    fp32 = Manifest(version=inp.version, precision="fp32", deployable=not inp.flags, flags=list(inp.flags),
                    metrics=_jsonable_metrics(inp.metrics), benchmark=inp.benchmark_fp32, **common)
    flags = list(inp.flags)
    for q in inp.quantization:
        if not q.deployable:
            flags.append(f"{q.runtime} INT8 accuracy drops {-q.delta:.2f} points ({q.fp32_accuracy:.2f}% -> "
                         f"{q.int8_accuracy:.2f}%), more than the {q.threshold:g}-point threshold")
    by_runtime = {q.runtime: {k: v for k, v in q.to_dict().items() if k != "model_path"} for q in inp.quantization}
    int8_metrics = dict(_jsonable_metrics(next(iter(inp.quantization)).int8_metrics)) if inp.quantization else {}
    int8_metrics["measured_with"] = inp.quantization[0].runtime if inp.quantization else None
    int8_metrics["int8_by_runtime"] = by_runtime
    int8 = Manifest(version=int8_version(inp.version), precision="int8", deployable=not flags, flags=flags,
                    metrics=int8_metrics, benchmark=inp.benchmark_int8,
                    quantization=worst(inp.quantization).to_manifest() if inp.quantization else None, **common)
    return fp32, int8


def write_packages(inp: PackageInputs, out_dir: Path, private_key: Any) -> tuple[Path, Path, Manifest, Manifest]:
    """Sign and write both packages into ``out_dir``; returns their paths and manifests."""
    from models.package import pack

    fp32, int8 = build_manifests(inp)
    fp32_pkg = pack(fp32, inp.fp32.mapping(), Path(out_dir), private_key)
    int8_pkg = pack(int8, inp.int8.mapping(), Path(out_dir), private_key)
    return Path(fp32_pkg), Path(int8_pkg), fp32, int8
