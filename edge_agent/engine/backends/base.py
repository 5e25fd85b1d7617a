"""The interface every inference backend implements.

A backend loads a package's model for one device and offers two ways to run it:
- ``infer(tensor)``: synchronous, returns copies of the outputs (tests, benchmarks, one-off calls);
- ``acquire(lane)`` -> ``submit(slot, userdata, callback)``: the pipeline's path. ``acquire`` blocks until an
  inference request is free and hands out that request's own input buffer, the preprocessor writes the frame
  straight into it (no extra copy, the benchmark_app way of binding inputs), ``submit`` starts it, and the
  callback runs on the backend's thread with the outputs, which are only valid during the callback.
  ``lanes`` independent submitters (pipeline feeder threads) may work at once, one per lane, so preprocessing
  of several frames overlaps; a lane is held from ``acquire`` to ``submit``/``release``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from edge_agent.engine.plugins import PluginTable
from models.manifest import InputSpec, Manifest

#: callback(userdata, outputs, inference_ms, error): outputs is None when error is set.
DoneCallback = Callable[[Any, "list[np.ndarray] | None", float, "BaseException | None"], None]


@dataclass(frozen=True)
class BackendOptions:
    """How to run, not what: the same package may be loaded for throughput (a live stream) or latency."""

    performance: Literal["throughput", "latency"] = "throughput"
    streams: int | None = None  # parallel execution streams; None lets the runtime choose
    requests: int | None = None  # inference requests in flight; None: the runtime's optimum, doubled for
    # throughput so the next frame is being prepared while every stream is busy
    lanes: int | None = None  # feeders that may submit at once; None: 2 for throughput on 2+ cores, else 1

    def resolved_lanes(self) -> int:
        import os

        if self.lanes:
            return max(1, self.lanes)
        return min(2, os.cpu_count() or 1) if self.performance == "throughput" else 1
    threads: int | None = None  # CPU threads; None lets the runtime choose
    exact_fp32: bool = False  # forbid reduced precision (OpenVINO CPU runs FP32 models in bf16 by default)
    embed_preprocessing: bool = False  # let the runtime do colour order, mean/std and layout inside the model
    # (OpenVINO's PrePostProcessor), so a request takes the resized uint8 BGR frame as it is: the pipeline's
    # per-frame work shrinks to a resize or a copy; LoadedModel.input_spec says what a request takes


@dataclass(frozen=True)
class Slot:
    """A free inference request and its input buffer (shape and dtype of the model input)."""

    id: int
    input: np.ndarray
    lane: int = 0


class LoadedModel(ABC):
    backend: str
    device: str
    max_in_flight: int
    lanes: int = 1
    input_shape: tuple[int, ...]
    input_dtype: np.dtype
    input_spec: InputSpec  # what infer() and a slot's input take: the manifest's, or a raw frame's when embedded

    @abstractmethod
    def infer(self, tensor: np.ndarray) -> list[np.ndarray]: ...

    @abstractmethod
    def acquire(self, lane: int = 0) -> Slot: ...

    @abstractmethod
    def submit(self, slot: Slot, userdata: Any, callback: DoneCallback) -> None: ...

    def release(self, slot: Slot) -> None:
        """Give back a slot that was acquired but will not be submitted (e.g. the pipeline is stopping)."""

    @abstractmethod
    def wait_all(self) -> None:
        """Block until every submitted request has called back."""

    @abstractmethod
    def close(self) -> None: ...

    def warm_up(self) -> None:
        """One inference on zeros at load time, so the slow first run is not mistaken for a hang."""
        self.infer(np.zeros(self.input_shape, dtype=self.input_dtype))

    def describe(self) -> str:
        return f"{self.backend} on {self.device} ({self.max_in_flight} in flight)"


class Backend(ABC):
    """A backend plug-in wraps one runtime: knows which devices it can use here and loads models for them."""

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def devices(cls) -> list[str]:
        """Devices usable on this machine, e.g. ["CPU", "GPU"]."""

    @classmethod
    @abstractmethod
    def supports(cls, manifest: Manifest) -> bool:
        """Whether the package carries a model format this runtime reads."""

    @classmethod
    @abstractmethod
    def load(cls, model_dir: Path, manifest: Manifest, device: str, options: BackendOptions) -> LoadedModel: ...


BACKENDS: PluginTable[type[Backend]] = PluginTable("inference backend")
"""Every runtime registers here with ``@BACKENDS.register("key")``; ``BACKENDS.keys()`` lists those that loaded."""
