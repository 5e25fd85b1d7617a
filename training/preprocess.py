"""The one definition of how uint8 images become model input tensors.

Training, assessment, quantization calibration and the exported package's ``InputSpec`` all go through this module,
so the device agent, which applies the ``InputSpec`` to BGR camera frames, computes exactly what training computed:

    resize to (H, W) -> reorder channels to ``color_order`` -> float32 * scale -> (x - mean) / std -> NCHW

Resizing uses OpenCV with INTER_AREA when shrinking and INTER_LINEAR when enlarging (``resize_image``).
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from models.manifest import InputSpec
from training.errors import ConfigError, DataError

IMAGENET_MEAN_RGB = [0.485, 0.456, 0.406]
IMAGENET_STD_RGB = [0.229, 0.224, 0.225]
_MIN_STD = 1e-3


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize one HxW or HxWxC uint8 image, keeping a trailing channel axis if it had one."""
    if image.shape[0] == height and image.shape[1] == width:
        return image
    shrink = image.shape[0] > height or image.shape[1] > width
    out = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    if image.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return out


def input_spec_for(
    dataset: "object",
    image_size: int | None = None,
    *,
    normalization: Literal["dataset", "unit", "imagenet"] = "dataset",
) -> InputSpec:
    """Describe the model input for ``dataset`` (pass the training split).

    ``normalization``: ``dataset`` computes per-channel mean/std of the scaled pixels of ``dataset`` (after resizing);
    ``unit`` leaves pixels in [0, 1]; ``imagenet`` uses the usual ImageNet statistics (RGB only).
    """
    images: np.ndarray = dataset.images  # type: ignore[attr-defined]
    if images.ndim != 4 or images.shape[0] == 0:
        raise DataError("cannot derive an input spec from an empty dataset")
    channels = images.shape[3]
    size_h, size_w = (image_size, image_size) if image_size else (images.shape[1], images.shape[2])
    color = "GRAY" if channels == 1 else "RGB"
    scale = 1.0 / 255.0
    if normalization == "unit":
        mean, std = [0.0] * channels, [1.0] * channels
    elif normalization == "imagenet":
        if channels != 3:
            raise ConfigError("imagenet normalization needs RGB images")
        mean, std = list(IMAGENET_MEAN_RGB), list(IMAGENET_STD_RGB)
    elif normalization == "dataset":
        sample = images
        if (size_h, size_w) != images.shape[1:3]:
            sample = np.stack([resize_image(im, size_h, size_w) for im in images[:2000]])
        pixels = sample.reshape(-1, channels).astype(np.float64) * scale
        mean = [round(float(m), 6) for m in pixels.mean(axis=0)]
        std = [round(max(float(s), _MIN_STD), 6) for s in pixels.std(axis=0)]
    else:
        raise ConfigError(f"unknown normalization {normalization!r}")
    return InputSpec(shape=[1, channels, size_h, size_w], layout="NCHW", color_order=color, scale=scale,
                     mean=mean, std=std, dtype="float32", resize="stretch")


def to_tensor(
    images: np.ndarray, spec: InputSpec, *, source_order: Literal["RGB", "BGR", "GRAY"] | None = None
) -> np.ndarray:
    """Turn (N, H, W, C) uint8 images into the float32 tensor ``spec`` describes (NCHW or NHWC).

    ``source_order`` is the channel order of ``images``: by default RGB for 3 channels and GRAY for 1 (how
    ``training.data`` stores them); pass ``"BGR"`` for OpenCV camera frames.
    """
    if images.ndim == 3:
        images = images[:, :, :, None]
    if images.ndim != 4:
        raise DataError(f"expected (N, H, W, C) images, got shape {images.shape}")
    n, h, w, c = images.shape
    src = source_order or ("GRAY" if c == 1 else "RGB")
    if (h, w) != (spec.height, spec.width):
        images = np.stack([resize_image(im, spec.height, spec.width) for im in images]) if n else images
    images = _convert_channels(images, src, spec.color_order)
    x = images.astype(np.float32) * np.float32(spec.scale)
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    x = (x - mean) / std
    if spec.layout == "NCHW":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x.astype(np.float32, copy=False)


def _convert_channels(images: np.ndarray, src: str, dst: str) -> np.ndarray:
    if src == dst:
        return images
    if dst == "GRAY":
        code = cv2.COLOR_RGB2GRAY if src == "RGB" else cv2.COLOR_BGR2GRAY
        return np.stack([cv2.cvtColor(np.ascontiguousarray(im), code)[:, :, None] for im in images])
    if src == "GRAY":
        return np.repeat(images, 3, axis=3)
    return images[:, :, :, ::-1]  # RGB <-> BGR
