"""OpenVINO backend: IR (or ONNX, which OpenVINO also reads) compiled for CPU, GPU, NPU or AUTO.

Inference is asynchronous through AsyncInferQueues (one per lane, i.e. per feeder thread, since a queue hands
out its idle request to one submitter at a time) sized from the device's optimal number of requests, with a
THROUGHPUT or LATENCY hint. Inputs are bound the way ``benchmark_app`` does it: each request's input tensor is
created once and the preprocessor writes into it; starting a request passes no data (passing a dict per call
costs ~20% on a small model).

With ``embed_preprocessing`` the package's colour order, mean/std and layout become the first operations of the
compiled model (OpenVINO's PrePostProcessor, the way its own samples feed camera frames): a request then takes the
uint8 BGR frame at the model's size, a quarter of the bytes of a float tensor, and the normalisation runs fused on
the inference threads instead of as a separate pass over the frame on the feeder's."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov
from openvino._pyopenvino import AsyncInferQueue as _QueueBase
from openvino.preprocess import ColorFormat, PrePostProcessor

from edge_agent.engine.backends.base import BACKENDS, Backend, BackendOptions, DoneCallback, LoadedModel, Slot
from edge_agent.errors import BackendError, DeviceUnavailable
from edge_agent.engine.preprocess import frame_spec, per_channel
from models.manifest import InputSpec, Manifest

log = logging.getLogger(__name__)
_NO_INPUTS: dict = {}  # inputs stay bound to each request (see OpenVinoModel.__init__)

_core: ov.Core | None = None
_core_lock = threading.Lock()


def core() -> ov.Core:
    """One Core per process: creating it enumerates plug-ins and devices, which is slow."""
    global _core
    with _core_lock:
        if _core is None:
            _core = ov.Core()
        return _core


def device_family(name: str) -> str:
    """"GPU.0" -> "GPU"."""
    return name.split(".")[0].upper()


@BACKENDS.register("openvino")
class OpenVinoBackend(Backend):
    name = "openvino"

    @classmethod
    def devices(cls) -> list[str]:
        found = []
        for d in core().available_devices:
            fam = device_family(d)
            if fam not in found:
                found.append(fam)
        return found + ["AUTO"]

    @classmethod
    def supports(cls, manifest: Manifest) -> bool:
        return manifest.runtimes.openvino is not None or manifest.runtimes.onnx is not None

    @classmethod
    def load(cls, model_dir: Path, manifest: Manifest, device: str, options: BackendOptions) -> LoadedModel:
        device = device.upper()
        if device != "AUTO" and device not in cls.devices():
            raise DeviceUnavailable(f"OpenVINO has no {device} here (devices: {', '.join(cls.devices())})")
        rt = manifest.runtimes
        if rt.openvino is not None:
            model = core().read_model(model_dir / rt.openvino.xml, model_dir / rt.openvino.bin)
        elif rt.onnx is not None:
            model = core().read_model(model_dir / rt.onnx)
        else:  # pragma: no cover - the manifest schema requires one runtime
            raise BackendError(f"package {manifest.name} has no model OpenVINO can read")
        spec = manifest.input
        if options.embed_preprocessing:
            spec = embed_preprocessing(model, spec)
        return OpenVinoModel(model, device, options, spec)


def embed_preprocessing(model: ov.Model, spec: InputSpec) -> InputSpec:
    """Fold the spec's colour order, ``(pixel * scale - mean) / std`` and layout into ``model`` (in place) and
    return the spec of what it takes now: the frame at the model's size, uint8 BGR NHWC. The arithmetic is the
    training definition's, in float32. Grey models keep the host path: OpenCV's grey conversion rounds to uint8
    and training does it that way."""
    if spec.color_order == "GRAY" or spec.channels != 3 or len(model.inputs) != 1:
        return spec
    try:
        ppp = PrePostProcessor(model)
        port = ppp.input()
        port.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(ColorFormat.BGR)
        port.model().set_layout(ov.Layout(spec.layout))
        steps = port.preprocess()
        if spec.dtype == "float32":
            steps.convert_element_type(ov.Type.f32)
        if spec.color_order == "RGB":
            steps.convert_color(ColorFormat.RGB)
        if spec.dtype == "float32":
            steps.mean([m / spec.scale for m in per_channel(spec.mean, 3, "mean")])
            steps.scale([s / spec.scale for s in per_channel(spec.std, 3, "std")])
        ppp.build()
    except Exception as exc:  # noqa: BLE001 - an unusual graph still runs, preprocessed on the host
        log.warning("could not fold preprocessing into the model (%s); preprocessing on the host", exc)
        return spec
    return frame_spec(spec)


class OpenVinoModel(LoadedModel):
    backend = "openvino"

    def __init__(self, model: ov.Model, device: str, options: BackendOptions, input_spec: InputSpec) -> None:
        self.input_spec = input_spec
        config: dict[str, Any] = {"PERFORMANCE_HINT": options.performance.upper()}
        if options.streams:
            config["NUM_STREAMS"] = str(options.streams)
        if options.threads and device == "CPU":
            config["INFERENCE_NUM_THREADS"] = str(options.threads)
        if options.exact_fp32 and device in ("CPU", "GPU"):
            config["INFERENCE_PRECISION_HINT"] = "f32"
        self.compiled = core().compile_model(model, device, config)
        self.device = device
        port = self.compiled.input(0)
        self.input_shape = tuple(port.get_shape())
        self.input_dtype = np.dtype(port.get_element_type().to_dtype())
        optimal = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self.optimal_requests = optimal
        if options.requests:
            jobs = options.requests
        else:
            jobs = optimal * 2 if options.performance == "throughput" else optimal
        self.lanes = options.resolved_lanes()
        per_lane = max(1, -(-jobs // self.lanes))
        self.max_in_flight = per_lane * self.lanes
        self.queues = [ov.AsyncInferQueue(self.compiled, per_lane) for _ in range(self.lanes)]
        for q in self.queues:
            q.set_callback(self._on_done)
        self.n_outputs = len(self.compiled.outputs)
        # Bind once: each request's input tensor is allocated here and reused for every frame.
        self._inputs = [[q[i].get_input_tensor(0).data for i in range(per_lane)] for q in self.queues]
        self._lane_locks = [threading.Lock() for _ in range(self.lanes)]
        self._sync = self.compiled.create_infer_request()
        self._sync_lock = threading.Lock()

    def infer(self, tensor: np.ndarray) -> list[np.ndarray]:
        with self._sync_lock:
            self._sync.get_input_tensor(0).data[...] = tensor
            self._sync.infer()
            return [self._sync.get_output_tensor(i).data.copy() for i in range(self.n_outputs)]

    def acquire(self, lane: int = 0) -> Slot:
        lane %= self.lanes
        self._lane_locks[lane].acquire()  # held until submit/release: one submitter per queue at a time
        try:
            idle = self.queues[lane].get_idle_request_id()  # waits (GIL released) until a request is free
        except BaseException:
            self._lane_locks[lane].release()
            raise
        return Slot(idle, self._inputs[lane][idle], lane)

    def release(self, slot: Slot) -> None:
        self._lane_locks[slot.lane].release()

    def submit(self, slot: Slot, userdata: Any, callback: DoneCallback) -> None:
        # start_async takes the same idle request acquire() returned (the queue's front), with its bound input.
        # The binding's own method: openvino's Python wrapper would wrap that request in a new object and
        # dispatch an empty input dict on every frame, a cost the feeder would pay per frame.
        try:
            _QueueBase.start_async(self.queues[slot.lane], _NO_INPUTS, (callback, userdata))
        finally:
            self._lane_locks[slot.lane].release()

    def _on_done(self, request: ov.InferRequest, payload: tuple[DoneCallback, Any]) -> None:
        callback, userdata = payload
        try:
            outputs = [request.get_output_tensor(i).data for i in range(self.n_outputs)]
        except Exception as exc:  # noqa: BLE001 - handed to the caller
            callback(userdata, None, 0.0, exc)
            return
        callback(userdata, outputs, float(request.latency), None)

    def wait_all(self) -> None:
        for q in self.queues:
            q.wait_all()

    def close(self) -> None:
        self.wait_all()
