"""Simulated devices: the agent's real protocol code with a stand-in camera and model.

A :class:`SimulatedDevice` is an :class:`~edge_agent.fleet.agent.Agent` whose pipeline makes small synthetic frames
and classifies them with a tiny numpy "model" (mean colour -> softmax over red/green/blue). Everything else
(enrollment, MQTT session, Last Will, twin, telemetry, outbox, commands) is the code a real device runs,
which is what `edgefleet sim --devices N` load-tests and what `edgefleet demo` shows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgefleet.protocol import PipelineConfig, Telemetry
from edge_agent.engine.interface import PipelineStats, SampleRun, Selection, Sink
from edge_agent.fleet.agent import Agent
from edge_agent.errors import BackendError, SourceError
from edge_agent.engine.postprocess.results import Classification, Result
from edge_agent.fleet.state import AgentConfig

log = logging.getLogger(__name__)
SIM_LABELS = ("red", "green", "blue")
SIM_DEFAULT_FPS = 10.0
SIM_SELECTION = Selection(backend="numpy", device="CPU", reason="simulated device")


def check_sim_source(spec: str) -> None:
    """The simulator only has synthetic cameras: `synthetic` or `synthetic:<name>`."""
    if spec != "synthetic" and not spec.startswith("synthetic:"):
        raise SourceError(f"unknown camera source {spec!r} for a simulated device (use synthetic or synthetic:NAME)")


def check_model_loads(model_dir: Path, manifest: Any) -> None:
    """A simulated device still proves a delivered model loads (so A/B rollback is exercised for real): it opens
    the package's ONNX file with onnxruntime, then classifies with its stand-in model."""
    onnx_name = getattr(manifest.runtimes, "onnx", None)
    if not onnx_name:
        return
    try:
        import onnxruntime

        onnxruntime.InferenceSession(str(model_dir / onnx_name), providers=["CPUExecutionProvider"])
    except ImportError:
        return
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
        raise BackendError(f"model {manifest.name} {manifest.version} does not load: {exc}") from None


class SyntheticPipeline:
    """A thread producing synthetic frames at ``max_fps`` and classifying them with numpy, with real counters."""

    def __init__(self, camera: str, config: PipelineConfig, sinks: Sequence, labels: Sequence[str] = SIM_LABELS,
                 size: tuple[int, int] = (48, 64)) -> None:
        check_sim_source(camera)
        self.camera, self.config, self.sinks, self.labels = camera, config, list(sinks), list(labels)
        self.size = size
        self.fps_target = config.max_fps or SIM_DEFAULT_FPS
        self.captured = self.inferred = self.dropped = 0
        self._latency: deque[float] = deque(maxlen=256)
        self._inference: deque[float] = deque(maxlen=256)
        self._times: deque[float] = deque(maxlen=64)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = np.random.default_rng(abs(hash(camera)) % 2**32)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"sim-pipeline-{self.camera}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _frame(self, index: int) -> np.ndarray:
        h, w = self.size
        image = self._rng.integers(0, 60, size=(h, w, 3), dtype=np.uint8)
        image[:, :, index % 3] += np.uint8(100 + (index * 7) % 90)  # a colour that changes frame by frame
        return image

    def _infer(self, image: np.ndarray) -> tuple[Classification, ...]:
        means = image.reshape(-1, 3).mean(axis=0)[::-1] / 32.0  # BGR -> RGB order, a "logit" per class
        z = np.exp(means - means.max())
        probs = z / z.sum()
        order = np.argsort(-probs)[: self.config.top_k]
        return tuple(Classification(self.labels[i % len(self.labels)], float(probs[i]), int(i)) for i in order)

    def _run(self) -> None:
        period = 1.0 / self.fps_target
        index = 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            captured_at = time.monotonic()
            image = self._frame(index)
            self.captured += 1
            t0 = time.perf_counter()
            results = self._infer(image)
            inference_ms = (time.perf_counter() - t0) * 1000
            latency_ms = (time.monotonic() - captured_at) * 1000
            result = Result(index, captured_at, results, inference_ms, latency_ms, image=image)
            self.inferred += 1
            self._latency.append(latency_ms)
            self._inference.append(inference_ms)
            self._times.append(time.monotonic())
            for sink in self.sinks:
                try:
                    sink(result)
                except Exception:  # noqa: BLE001 - a sink bug must not stop the camera
                    log.exception("sink failed")
            index += 1
            next_at += period
            delay = next_at - time.monotonic()
            if delay < 0:
                self.dropped += int(-delay // period)  # frames a real camera would have delivered meanwhile
                next_at = time.monotonic()
            self._stop.wait(max(0.0, delay))

    def stats(self) -> PipelineStats:
        times = list(self._times)
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        lat, inf = np.array(self._latency or [0.0]), np.array(self._inference or [0.0])
        return PipelineStats(
            frames_captured=self.captured, frames_inferred=self.inferred, frames_dropped=self.dropped,
            fps=round(fps, 2), camera_state="streaming", backend=SIM_SELECTION.backend, device=SIM_SELECTION.device,
            latency_ms_p50=float(np.percentile(lat, 50)), latency_ms_p95=float(np.percentile(lat, 95)),
            latency_ms_p99=float(np.percentile(lat, 99)), inference_ms_p50=float(np.percentile(inf, 50)),
            inference_ms_p95=float(np.percentile(inf, 95)))


class SimStagedModel:
    """The stand-in model for a delivered package (its labels), loaded beside the running one."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)
        self.selection = SIM_SELECTION

    def run_sample(self, image: Any | None = None) -> float:
        return self.probe(image).inference_ms

    def run(self, image: Any) -> tuple[tuple[Classification, ...], float]:
        sample = self.probe(image)
        return sample.results, sample.inference_ms

    def probe(self, image: Any | None = None) -> SampleRun:
        """The stand-in model on one frame; its "output" is the softmax over the mean colour."""
        probe = SyntheticPipeline("synthetic", PipelineConfig(top_k=len(self.labels)), [], self.labels)
        frame = probe._frame(0) if image is None else image
        started = time.perf_counter()
        results = probe._infer(frame)
        elapsed = (time.perf_counter() - started) * 1000.0
        scores = np.zeros((1, len(self.labels)), dtype=np.float32)
        for item in results:
            scores[0, item.index] = item.score
        return SampleRun(elapsed, [scores], results)

    def close(self) -> None:
        """Nothing to release: the stand-in holds no runtime."""


class SimPipelineFactory:
    """Builds :class:`SyntheticPipeline` s; ``fps`` applies when the pipeline config sets no ``max_fps``."""

    needs_model = False  # the stand-in model is built in

    def __init__(self, fps: float = SIM_DEFAULT_FPS) -> None:
        self.fps = fps

    def __call__(self, model_dir: Path | None, manifest: Any, camera: str, config: PipelineConfig,
                 sinks: Sequence[Sink]) -> tuple[SyntheticPipeline, Selection]:
        if config.backend not in (None, "numpy", "sim"):
            raise SourceError(f"backend {config.backend!r} is not available on a simulated device (use numpy)")
        labels = list(manifest.labels) if manifest is not None else SIM_LABELS
        if manifest is not None and model_dir is not None:
            check_model_loads(Path(model_dir), manifest)
        if config.max_fps is None:
            config = config.model_copy(update={"max_fps": self.fps})
        pipeline = SyntheticPipeline(camera, config, sinks, labels)
        return pipeline, SIM_SELECTION

    def load_model(self, model_dir: Path, manifest: Any, config: PipelineConfig) -> SimStagedModel:
        check_model_loads(Path(model_dir), manifest)
        return SimStagedModel(manifest.labels)

    def swap(self, pipeline: Any, staged: Any) -> None:
        """The simulated camera keeps running; classification uses the new labels from the next frame."""
        if not isinstance(pipeline, SyntheticPipeline) or not isinstance(staged, SimStagedModel):
            raise SourceError("a simulated device can only swap its own stand-in models")
        pipeline.labels = staged.labels

    def check_source(self, spec: str) -> None:
        check_sim_source(spec)


sim_pipeline_factory = SimPipelineFactory()


class SimulatedDevice(Agent):
    """An in-process device for the demo and scale tests: ``SimulatedDevice(config, state_dir).start()``."""

    def __init__(self, config: AgentConfig, state_dir: Path, *, fps: float = SIM_DEFAULT_FPS, **kwargs: Any) -> None:
        kwargs.setdefault("pipeline_factory", SimPipelineFactory(fps))
        kwargs.setdefault("agent_version", "0.1.0-sim")
        super().__init__(config, state_dir, **kwargs)

    @property
    def telemetry(self) -> Telemetry | None:
        """The last telemetry snapshot this device queued (what the fleet will see)."""
        return self.last_telemetry


def enroll_simulated(server: str, token: str, root: Path, count: int, *, prefix: str = "sim") -> list[AgentConfig]:
    """Enroll ``count`` devices through the real enroll API, one state dir each under ``root``."""
    from edge_agent.fleet.enroll import enroll

    configs = []
    for i in range(count):
        state_dir = root / f"{prefix}-{i:04d}"
        if (state_dir / "agent.json").exists():
            configs.append(AgentConfig.model_validate_json((state_dir / "agent.json").read_text()))
            continue
        configs.append(enroll(server, token, state_dir, name=f"{prefix}-{i:04d}", source=f"synthetic:{i}"))
    return configs
