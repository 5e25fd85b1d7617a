"""onnxruntime backend: the package's ONNX file on the best execution provider for the device.

Devices map to provider lists (Frigate's way, built from ``ort.get_available_providers()``): GPU -> CUDA,
NPU -> OpenVINO EP, AUTO -> the best present, CPU -> CPU; CPU is always appended as the fallback. Async runs use
a small thread pool: onnxruntime releases the GIL while it computes, so capture and preprocessing overlap.

onnxruntime itself (~20 MB resident) is imported only when a model is loaded on it or its providers are
asked for; until then the installed wheel tells which providers it brings (``installed_providers``)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import queue
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.engine.backends.base import BACKENDS, Backend, BackendOptions, DoneCallback, LoadedModel, Slot
from edge_agent.errors import BackendError, DeviceUnavailable
from models.manifest import InputSpec, Manifest

if importlib.util.find_spec("onnxruntime") is None:
    raise ImportError("onnxruntime is not installed")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
OPENVINO_EP = "OpenVINOExecutionProvider"
_ORT_TYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(float16)": np.float16}


def providers_for(device: str, available: list[str] | tuple[str, ...]) -> list[Any]:
    """The provider list for a device, CPU last as the fallback; DeviceUnavailable when nothing fits."""
    device = device.upper()
    if device == "CPU":
        return [CPU]
    if device == "GPU" and CUDA in available:
        return [CUDA, CPU]
    if device in ("GPU", "NPU") and OPENVINO_EP in available:
        return [(OPENVINO_EP, {"device_type": device}), CPU]
    if device == "AUTO":
        best = [p for p in (CUDA, OPENVINO_EP) if p in available]
        return best[:1] + [CPU]
    raise DeviceUnavailable(f"onnxruntime has no execution provider for {device} here "
                            f"(providers: {', '.join(available) or 'none'})")


_WHEEL_PROVIDERS = {  # what each onnxruntime wheel is built with (get_available_providers() lists the same)
    "onnxruntime": [CPU],
    "onnxruntime-gpu": ["TensorrtExecutionProvider", CUDA, CPU],
    "onnxruntime-openvino": [OPENVINO_EP, CPU],
    "onnxruntime-directml": ["DmlExecutionProvider", CPU],
}


def installed_providers() -> list[str]:
    """onnxruntime's providers without importing it when it is not imported yet (the wheel's name says them);
    a provider that then fails to load falls back to CPU like any unavailable device."""
    if "onnxruntime" in sys.modules:
        return list(sys.modules["onnxruntime"].get_available_providers())
    found: list[str] = []
    for name, providers in _WHEEL_PROVIDERS.items():
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found += [p for p in providers if p not in found]
    if not found:  # an unusual build: ask it
        import onnxruntime

        return list(onnxruntime.get_available_providers())
    return sorted(found, key=lambda p: p == CPU)


def device_names(available: list[str] | tuple[str, ...]) -> list[str]:
    names = ["CPU"]
    if CUDA in available or OPENVINO_EP in available:
        names.append("GPU")
    if OPENVINO_EP in available:
        names.append("NPU")
    return names


@BACKENDS.register("onnxruntime")
class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    @classmethod
    def devices(cls) -> list[str]:
        return device_names(installed_providers())

    @classmethod
    def supports(cls, manifest: Manifest) -> bool:
        return manifest.runtimes.onnx is not None

    @classmethod
    def load(cls, model_dir: Path, manifest: Manifest, device: str, options: BackendOptions) -> LoadedModel:
        if manifest.runtimes.onnx is None:
            raise BackendError(f"package {manifest.name} has no ONNX model for onnxruntime")
        return OnnxRuntimeModel(model_dir / manifest.runtimes.onnx, device, options, manifest.input)


class OnnxRuntimeModel(LoadedModel):
    backend = "onnxruntime"

    def __init__(self, path: Path, device: str, options: BackendOptions, input_spec: InputSpec) -> None:
        import onnxruntime as ort

        self.input_spec = input_spec  # the package's own: onnxruntime has no preprocessing to fold in

        cores = os.cpu_count() or 1
        in_flight = options.requests or options.streams or (1 if options.performance == "latency" else min(2, cores))
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = options.threads or max(1, cores // in_flight)
        if in_flight > 1:  # spinning workers would steal the cores the other requests and capture need
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = providers_for(device, ort.get_available_providers())
        self.session = ort.InferenceSession(str(path), sess_options=so, providers=providers)
        self.device = device.upper()
        self.providers = self.session.get_providers()
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_dtype = np.dtype(_ORT_TYPES.get(inp.type, np.float32))
        self.input_shape = tuple(d if isinstance(d, int) else 1 for d in inp.shape)
        self.max_in_flight = in_flight
        self.lanes = options.resolved_lanes()  # the slot pool is thread-safe: any number of feeders
        self._free: queue.Queue[Slot] = queue.Queue()
        for i in range(in_flight):
            self._free.put(Slot(i, np.zeros(self.input_shape, self.input_dtype)))
        self._pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="ort-infer")
        self._pending = 0
        self._idle = threading.Condition()

    def infer(self, tensor: np.ndarray) -> list[np.ndarray]:
        return list(self.session.run(self.output_names, {self.input_name: tensor}))

    def acquire(self, lane: int = 0) -> Slot:
        return self._free.get()

    def release(self, slot: Slot) -> None:
        self._free.put(slot)

    def submit(self, slot: Slot, userdata: Any, callback: DoneCallback) -> None:
        with self._idle:
            self._pending += 1
        self._pool.submit(self._run, slot, userdata, callback)

    def _run(self, slot: Slot, userdata: Any, callback: DoneCallback) -> None:
        try:
            start = time.perf_counter()
            try:
                outputs = self.session.run(self.output_names, {self.input_name: slot.input})
            except Exception as exc:  # reported to the caller, never lost in the pool
                callback(userdata, None, (time.perf_counter() - start) * 1000.0, exc)
            else:
                callback(userdata, list(outputs), (time.perf_counter() - start) * 1000.0, None)
        finally:
            self._free.put(slot)
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def wait_all(self) -> None:
        with self._idle:
            self._idle.wait_for(lambda: self._pending == 0)

    def close(self) -> None:
        self.wait_all()
        self._pool.shutdown(wait=True)

    def describe(self) -> str:
        return f"onnxruntime on {self.device} via {', '.join(self.providers)} ({self.max_in_flight} in flight)"
