"""Camera frame -> model input tensor, exactly as the package's InputSpec (and training/preprocess.py) define it.

The definition shared with training: resize to the input size with OpenCV, INTER_AREA when shrinking and
INTER_LINEAR when enlarging (``resize: letterbox`` keeps the aspect ratio, centred, padded with grey 114), then
colour order (RGB, BGR, or GRAY from the resized BGR image), then for float inputs
``(pixel * scale - mean[c]) / std[c]``, then NCHW or NHWC. uint8 inputs get raw pixels after
resize/colour/layout (the model normalises inside).

Per frame: one ``cv2.resize`` into a preallocated buffer, then one ``cv2.dnn.blobFromImageWithParams`` that fuses
the colour swap, normalisation and transpose and writes straight into the caller's buffer, typically the
inference request's own input tensor, so the frame is copied once on its way to the model. When the runtime has
folded the rest into the model (:func:`frame_spec`), only the resize (or a copy) remains. (INTER_AREA, which
training uses, costs several times INTER_LINEAR for a camera frame: the price of matching training exactly; the
per-stage costs on a given machine are in bench/results/agent.md, from bench/agent_bench.py's frame_costs.)
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from models.manifest import InputSpec

LETTERBOX_FILL = 114
SPLIT_MIN_PIXELS = 250_000  # frames at least this big shrink in two bands on two cores (640x480 is 307,200)


def split_row(height: int, out_height: int) -> tuple[int, int] | None:
    """(output row, input row) near the middle where INTER_AREA's output-row boundaries fall exactly on an input
    row, so two bands resized separately equal one resize of the whole, bit for bit; None when there is none."""
    step = out_height // math.gcd(height, out_height)
    k = round(out_height / 2 / step) * step
    return (k, k * height // out_height) if 0 < k < out_height else None


@dataclass(frozen=True)
class Geometry:
    """How model-input pixel coordinates map back to the frame: ``frame = (model - pad) / scale``."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    frame_width: int = 0
    frame_height: int = 0

    def to_frame(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple:
        return (x - self.pad_x) / self.scale_x, (y - self.pad_y) / self.scale_y


def frame_spec(spec: InputSpec) -> InputSpec:
    """The spec of a camera frame merely resized to ``spec``'s size (uint8 BGR NHWC, no normalisation): what a
    model takes once its runtime does the rest (edge_agent.engine.backends.openvino.embed_preprocessing)."""
    return InputSpec(shape=[1, spec.height, spec.width, 3], layout="NHWC", color_order="BGR", scale=1.0,
                     mean=[0.0], std=[1.0], dtype="uint8", resize=spec.resize)


def geometry(spec: InputSpec, frame_width: int, frame_height: int) -> Geometry:
    """The resize geometry a frame of this size gets (the same arithmetic OpenCV's letterbox uses)."""
    w, h = spec.width, spec.height
    if spec.resize == "stretch":
        return Geometry(w / frame_width, h / frame_height, 0.0, 0.0, frame_width, frame_height)
    factor = min(w / frame_width, h / frame_height)
    rw, rh = int(frame_width * factor), int(frame_height * factor)
    return Geometry(rw / frame_width, rh / frame_height, float((w - rw) // 2), float((h - rh) // 2),
                    frame_width, frame_height)


class Preprocessor:
    """Turns BGR HxWx3 uint8 frames into input tensors for one InputSpec; build once, call per frame.
    Thread-safe: each calling thread gets its own resize buffer. ``split_shrinks``: shrink big frames on two
    cores, for live cameras where a core is idle between frames and latency counts (on a saturated pipeline
    it only adds hand-off work)."""

    def __init__(self, spec: InputSpec, *, split_shrinks: bool = False) -> None:
        self.spec = spec
        self.split_shrinks = split_shrinks
        channels = 1 if spec.color_order == "GRAY" else 3
        if spec.channels != channels:
            raise ValueError(f"input shape {spec.shape} ({spec.layout}) has {spec.channels} channels, "
                             f"but colour order {spec.color_order} needs {channels}")
        if spec.shape[0] != 1:
            raise ValueError(f"batch size must be 1 for live inference, got {spec.shape[0]}")
        if spec.scale == 0:
            raise ValueError("scale must not be 0")
        self.shape = tuple(spec.shape)
        self.dtype = np.dtype(spec.dtype)
        mean = per_channel(spec.mean, channels, "mean")
        std = per_channel(spec.std, channels, "std")
        if any(s == 0 for s in std):
            raise ValueError("std must not contain 0")
        params = cv2.dnn.Image2BlobParams()
        params.size = (spec.width, spec.height)  # frames arrive already resized: no resampling in here
        params.swapRB = spec.color_order == "RGB"
        params.datalayout = cv2.DNN_LAYOUT_NCHW if spec.layout == "NCHW" else cv2.DNN_LAYOUT_NHWC
        if self.dtype == np.float32:
            params.ddepth = cv2.CV_32F
            # OpenCV computes (x - mean') * factor'; ours is (x * scale - mean) / std.
            params.mean = tuple(m / spec.scale for m in mean)
            params.scalefactor = tuple(spec.scale / s for s in std)
        else:
            params.ddepth = cv2.CV_8U
        self._params = params
        # A raw frame spec (frame_spec) needs no blob pass: the resize writes straight into the output.
        self._frame_only = (self.dtype == np.uint8 and spec.layout == "NHWC" and spec.color_order == "BGR")
        self._local = threading.local()  # per thread: resize buffer, frame size its letterbox canvas is for
        self._helper: ThreadPoolExecutor | None = None  # second core for big shrinks, started on first use
        self._helper_lock = threading.Lock()

    def new_buffer(self) -> np.ndarray:
        return np.empty(self.shape, dtype=self.dtype)

    def __call__(self, image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Fill ``out`` (shape and dtype of the input spec, C-contiguous) or a new array; return it."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 BGR frame, got {image.shape} {image.dtype}")
        if out is not None and (out.shape != self.shape or out.dtype != self.dtype or not out.flags.c_contiguous):
            raise ValueError(f"output buffer must be C-contiguous {self.shape} {self.dtype}, "
                             f"got {out.shape} {out.dtype}")
        if self._frame_only:
            if out is None:
                out = self.new_buffer()
            self._resize(image, into=out[0])
            return out
        sized = self._resize(image)
        if self.spec.color_order == "GRAY":
            sized = cv2.cvtColor(sized, cv2.COLOR_BGR2GRAY)
        if out is None:
            return cv2.dnn.blobFromImageWithParams(sized, self._params)
        result = cv2.dnn.blobFromImageWithParams(sized, out, self._params)
        if result.ctypes.data != out.ctypes.data:  # OpenCV reallocated: keep the contract
            out[...] = result
        return out

    def _resize(self, image: np.ndarray, into: np.ndarray | None = None) -> np.ndarray:
        """``image`` at the spec's size: itself when it already is (copied when ``into`` is given), else
        resized into ``into`` or this thread's buffer."""
        h, w = image.shape[:2]
        th, tw = self.spec.height, self.spec.width
        if (h, w) == (th, tw):
            if into is None:
                return image
            np.copyto(into, image)
            return into
        if into is not None and self.spec.resize == "stretch":
            return self._shrink_or_resize(image, into)
        if into is not None:
            np.copyto(into, self._resize(image))
            return into
        local = self._local
        if not hasattr(local, "resized"):
            local.resized = np.empty((th, tw, 3), np.uint8)
            local.canvas_for = None
        if self.spec.resize == "stretch":
            return self._shrink_or_resize(image, local.resized)
        g = self.geometry(w, h)
        rw, rh = round(w * g.scale_x), round(h * g.scale_y)
        if local.canvas_for != (w, h):
            local.resized[...] = LETTERBOX_FILL
            local.canvas_for = (w, h)
        top, left = int(g.pad_y), int(g.pad_x)
        local.resized[top:top + rh, left:left + rw] = cv2.resize(
            image, (rw, rh), interpolation=_interpolation(h, w, rh, rw))
        return local.resized

    def _shrink_or_resize(self, image: np.ndarray, into: np.ndarray) -> np.ndarray:
        """``cv2.resize`` into ``into``. A big INTER_AREA shrink (a camera frame to a model's input, the largest
        part of the pipeline's own latency: see bench/results/agent.md) runs as two row bands, the lower
        one on a helper thread; OpenCV releases the GIL, so both cores work on the frame and the result is
        bit-identical (:func:`split_row`)."""
        h, w = image.shape[:2]
        th, tw = into.shape[:2]
        interpolation = _interpolation(h, w, th, tw)
        splittable = (self.split_shrinks and _CORES > 1 and interpolation == cv2.INTER_AREA
                      and h * w >= SPLIT_MIN_PIXELS and image.flags.c_contiguous)
        cut = split_row(h, th) if splittable else None
        if cut is None:
            return cv2.resize(image, (tw, th), dst=into, interpolation=interpolation)
        k, r = cut
        lower = self._pool().submit(cv2.resize, image[r:], (tw, th - k), dst=into[k:], interpolation=interpolation)
        cv2.resize(image[:r], (tw, k), dst=into[:k], interpolation=interpolation)
        lower.result()
        return into

    def _pool(self) -> ThreadPoolExecutor:
        with self._helper_lock:
            if self._helper is None:
                self._helper = ThreadPoolExecutor(max_workers=2, thread_name_prefix="preprocess")
            return self._helper

    def geometry(self, frame_width: int, frame_height: int) -> Geometry:
        return geometry(self.spec, frame_width, frame_height)


_CORES = os.cpu_count() or 1


def _interpolation(h: int, w: int, th: int, tw: int) -> int:
    return cv2.INTER_AREA if h > th or w > tw else cv2.INTER_LINEAR


def per_channel(values: list[float], channels: int, name: str) -> tuple[float, ...]:
    if len(values) == 1:
        return tuple(float(values[0]) for _ in range(channels))
    if len(values) != channels:
        raise ValueError(f"{name} has {len(values)} values for {channels} channels")
    return tuple(float(v) for v in values)
