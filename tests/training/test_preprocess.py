from __future__ import annotations

import numpy as np
import pytest

from models.manifest import InputSpec
from training.data import Dataset, load_dataset
from training.errors import DataError
from training.preprocess import input_spec_for, to_tensor


def test_spec_for_grayscale_digits_uses_training_statistics(small_digits: Dataset) -> None:
    spec = input_spec_for(small_digits)
    pixels = small_digits.images.astype(np.float64) / 255
    assert spec.shape == [1, 1, 8, 8] and spec.color_order == "GRAY" and spec.layout == "NCHW"
    assert spec.mean[0] == pytest.approx(pixels.mean(), abs=1e-5)
    assert spec.std[0] == pytest.approx(pixels.std(), abs=1e-5)


def test_tensor_is_exactly_what_the_spec_describes() -> None:
    ds, _ = load_dataset("synthetic:10")
    spec = input_spec_for(ds, normalization="imagenet")
    x = to_tensor(ds.images, spec)
    expected = ((ds.images / 255.0 - np.array(spec.mean)) / np.array(spec.std)).transpose(0, 3, 1, 2)
    assert x.dtype == np.float32 and x.shape == (10, 3, 32, 32)
    assert np.allclose(x, expected, atol=1e-5)


def test_bgr_camera_frames_give_the_same_tensor_as_rgb_training_images() -> None:
    ds, _ = load_dataset("synthetic:10")
    spec = input_spec_for(ds)
    bgr = ds.images[:, :, :, ::-1]
    assert np.array_equal(to_tensor(bgr, spec, source_order="BGR"), to_tensor(ds.images, spec))


def test_frames_of_another_size_are_resized_to_the_spec(small_digits: Dataset) -> None:
    spec = input_spec_for(small_digits, image_size=16)
    x = to_tensor(small_digits.images[:4], spec)
    assert x.shape == (4, 1, 16, 16)
    spec_hwc = InputSpec(shape=[1, 16, 16, 1], layout="NHWC", color_order="GRAY")
    assert to_tensor(small_digits.images[:4], spec_hwc).shape == (4, 16, 16, 1)


def test_bad_image_array_is_a_clear_error(small_digits: Dataset) -> None:
    with pytest.raises(DataError):
        to_tensor(np.zeros((2, 3), np.uint8), input_spec_for(small_digits))
