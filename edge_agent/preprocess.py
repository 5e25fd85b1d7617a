"""Camera frame -> model input tensor, exactly as the package's InputSpec defines it.

The definition (shared with training): colour order (RGB, BGR, or GRAY converted from BGR first), resize to the
input size (stretch, or letterbox keeping the aspect ratio, centred, padded with grey 114), then for float inputs
``(pixel * scale - mean[c]) / std[c]``, then lay out as NCHW or NHWC. uint8 inputs get raw pixels after
resize/colour/layout (the model normalises inside).

It runs once per frame in one OpenCV call (``cv2.dnn.blobFromImageWithParams``: resize, swap, normalise and
transpose fused, ~0.2 ms for 640x480 -> 224) writing straight into a caller's buffer, typically the inference
request's own input tensor, so a frame is copied exactly once on its way to the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.manifest import InputSpec

LETTERBOX_FILL = 114


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
    """Turns BGR HxWx3 uint8 frames into input tensors for one InputSpec; build once, call per frame."""

    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec
        channels = 1 if spec.color_order == "GRAY" else 3
        if spec.channels != channels:
            raise ValueError(f"input shape {spec.shape} ({spec.layout}) has {spec.channels} channels, "
                             f"but colour order {spec.color_order} needs {channels}")
        if spec.shape[0] != 1:
            raise ValueError(f"batch size must be 1 for live inference, got {spec.shape[0]}")
        self.shape = tuple(spec.shape)
        self.dtype = np.dtype(spec.dtype)
        mean = _per_channel(spec.mean, channels, "mean")
        std = _per_channel(spec.std, channels, "std")
        if any(s == 0 for s in std):
            raise ValueError("std must not contain 0")
        params = cv2.dnn.Image2BlobParams()
        params.size = (spec.width, spec.height)
        params.swapRB = spec.color_order == "RGB"
        params.datalayout = cv2.DNN_LAYOUT_NCHW if spec.layout == "NCHW" else cv2.DNN_LAYOUT_NHWC
        if spec.resize == "letterbox":
            params.paddingmode = cv2.dnn.DNN_PMODE_LETTERBOX
            params.borderValue = (LETTERBOX_FILL,) * 4
        if self.dtype == np.float32:
            params.ddepth = cv2.CV_32F
            # OpenCV computes (x - mean') * factor'; ours is (x * scale - mean) / std.
            params.mean = tuple(m / spec.scale for m in mean) if spec.scale else tuple(0.0 for _ in mean)
            params.scalefactor = tuple(spec.scale / s for s in std)
            if spec.scale == 0:
                raise ValueError("scale must not be 0")
        else:
            params.ddepth = cv2.CV_8U
        self._params = params

    def new_buffer(self) -> np.ndarray:
        return np.empty(self.shape, dtype=self.dtype)

    def __call__(self, image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Fill ``out`` (shape and dtype of the input spec, C-contiguous) or a new array; return it."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 BGR frame, got {image.shape} {image.dtype}")
        if self.spec.color_order == "GRAY":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if out is None:
            return cv2.dnn.blobFromImageWithParams(image, self._params)
        if out.shape != self.shape or out.dtype != self.dtype or not out.flags.c_contiguous:
            raise ValueError(f"output buffer must be C-contiguous {self.shape} {self.dtype}, "
                             f"got {out.shape} {out.dtype}")
        result = cv2.dnn.blobFromImageWithParams(image, out, self._params)
        if result is not out and result.ctypes.data != out.ctypes.data:  # OpenCV reallocated: keep the contract
            out[...] = result
        return out

    def geometry(self, frame_width: int, frame_height: int) -> Geometry:
        return geometry(self.spec, frame_width, frame_height)


def _per_channel(values: list[float], channels: int, name: str) -> tuple[float, ...]:
    if len(values) == 1:
        return tuple(float(values[0]) for _ in range(channels))
    if len(values) != channels:
        raise ValueError(f"{name} has {len(values)} values for {channels} channels")
    return tuple(float(v) for v in values)
