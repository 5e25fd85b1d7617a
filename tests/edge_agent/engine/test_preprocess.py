"""The agent's preprocessing equals the training definition, written out plainly in numpy."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_agent.engine.preprocess import LETTERBOX_FILL, Preprocessor, frame_spec, geometry, split_row
from models.manifest import InputSpec


def reference(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Resize (INTER_AREA shrinking, INTER_LINEAR enlarging; stretch or centred letterbox), colour order, scale,
    (x - mean) / std, layout: step by step."""
    h, w = spec.height, spec.width

    def resize(im, tw, th):
        shrink = im.shape[0] > th or im.shape[1] > tw
        return cv2.resize(im, (tw, th), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)

    if spec.resize == "stretch":
        resized = resize(image, w, h)
    else:
        f = min(w / image.shape[1], h / image.shape[0])
        rw, rh = int(image.shape[1] * f), int(image.shape[0] * f)
        resized = np.full((h, w, 3), LETTERBOX_FILL, np.uint8)
        top, left = (h - rh) // 2, (w - rw) // 2
        resized[top:top + rh, left:left + rw] = resize(image, rw, rh)
    if spec.color_order == "RGB":
        pixels = resized[:, :, ::-1]
    elif spec.color_order == "GRAY":
        pixels = cv2.cvtColor(resized, cv2.COLOR_BGR2GRAY)[:, :, None]
    else:
        pixels = resized
    if spec.dtype == "float32":
        x = pixels.astype(np.float32) * spec.scale
        x = (x - np.array(spec.mean, np.float32)) / np.array(spec.std, np.float32)
    else:
        x = pixels.copy()
    x = x.transpose(2, 0, 1) if spec.layout == "NCHW" else x
    return np.ascontiguousarray(x[None])


@pytest.fixture()
def frame() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)


def _spec(color: str, layout: str, **kw) -> InputSpec:
    c = 1 if color == "GRAY" else 3
    shape = [1, c, 24, 32] if layout == "NCHW" else [1, 24, 32, c]
    mean = [0.5] if c == 1 else [0.485, 0.456, 0.406]
    std = [0.25] if c == 1 else [0.229, 0.224, 0.225]
    return InputSpec(shape=shape, layout=layout, color_order=color, mean=mean, std=std, **kw)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("color", ["RGB", "BGR", "GRAY"])
def test_float_input_equals_numpy_reference(frame, color, layout):
    spec = _spec(color, layout)
    got = Preprocessor(spec)(frame)
    want = reference(frame, spec)
    assert got.shape == tuple(spec.shape) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_letterbox_matches_reference_and_geometry_maps_back(frame, layout):
    spec = _spec("RGB", layout, resize="letterbox")
    spec = spec.model_copy(update={"shape": [1, 3, 32, 32] if layout == "NCHW" else [1, 32, 32, 3]})
    np.testing.assert_allclose(Preprocessor(spec)(frame), reference(frame, spec), rtol=1e-5, atol=1e-5)
    g = geometry(spec, 64, 48)  # 64x48 -> 32x24 centred in 32x32: 4 rows of padding on top
    assert (g.scale_x, g.scale_y, g.pad_x, g.pad_y) == (0.5, 0.5, 0.0, 4.0)
    assert g.to_frame(16.0, 16.0) == (32.0, 24.0)


@pytest.mark.parametrize("size", [(24, 32), (96, 128), (48, 64)])  # shrink, enlarge, same size
@pytest.mark.parametrize("color", ["RGB", "GRAY"])
def test_equals_trainings_own_preprocessing(frame, color, size):
    training = pytest.importorskip("training.preprocess")
    spec = _spec(color, "NCHW").model_copy(update={"shape": [1, 1 if color == "GRAY" else 3, *size]})
    want = training.to_tensor(frame[None], spec, source_order="BGR")
    np.testing.assert_allclose(Preprocessor(spec)(frame), want, rtol=1e-5, atol=1e-5)


def test_frames_of_changing_size_each_get_their_own_letterbox(frame):
    spec = InputSpec(shape=[1, 3, 32, 32], resize="letterbox")
    pre = Preprocessor(spec)
    tall = np.ascontiguousarray(frame.transpose(1, 0, 2))  # 64x48 -> padding left and right instead of on top
    for image in (frame, tall, frame):
        np.testing.assert_allclose(pre(image), reference(image, spec), rtol=1e-5, atol=1e-5)


def test_uint8_input_keeps_raw_pixels(frame):
    spec = _spec("RGB", "NHWC", dtype="uint8")
    got = Preprocessor(spec)(frame)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, reference(frame, spec))


def test_writes_into_the_callers_buffer(frame):
    pre = Preprocessor(_spec("RGB", "NCHW"))
    buf = pre.new_buffer()
    out = pre(frame, out=buf)
    assert out is buf
    np.testing.assert_allclose(buf, reference(frame, pre.spec), rtol=1e-5, atol=1e-5)


def test_wrong_buffer_or_frame_is_refused_with_a_reason(frame):
    pre = Preprocessor(_spec("RGB", "NCHW"))
    with pytest.raises(ValueError, match="output buffer"):
        pre(frame, out=np.empty((1, 3, 10, 10), np.float32))
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        pre(frame.astype(np.float32))


def test_spec_whose_channels_disagree_with_colour_order_is_refused():
    with pytest.raises(ValueError, match="channels"):
        Preprocessor(InputSpec(shape=[1, 1, 8, 8], color_order="RGB"))


def test_one_preprocessor_serves_several_threads(frame):
    import threading

    spec = InputSpec(shape=[1, 3, 24, 32], resize="letterbox")
    pre = Preprocessor(spec)
    frames = [frame, np.ascontiguousarray(frame[::-1]), np.ascontiguousarray(frame.transpose(1, 0, 2))]
    want = [reference(f, spec) for f in frames]
    failures = []

    def work(k: int) -> None:
        for i in range(60):
            j = (i + k) % 3
            if not np.allclose(pre(frames[j]), want[j], atol=1e-5):
                failures.append((k, i))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
@pytest.mark.parametrize("size", [(24, 32), (96, 128), (48, 64)])  # shrink, enlarge, same size
def test_frame_spec_only_resizes_into_the_callers_buffer(frame, resize, size):
    """What a request takes once the runtime normalises inside: the frame at the model's size, uint8 BGR."""
    spec = _spec("RGB", "NCHW", resize=resize).model_copy(update={"shape": [1, 3, *size]})
    raw = frame_spec(spec)
    assert (raw.height, raw.width, raw.layout, raw.color_order, raw.dtype) == (*size, "NHWC", "BGR", "uint8")
    pre = Preprocessor(raw)
    buf = pre.new_buffer()
    assert pre(frame, out=buf) is buf
    np.testing.assert_array_equal(buf, reference(frame, raw))
    assert pre.geometry(64, 48) == geometry(spec, 64, 48)  # results map back to the frame the same way


@pytest.mark.parametrize("frame_size", [(480, 640), (720, 1280), (1080, 1920), (360, 640)])
@pytest.mark.parametrize("out_size", [(224, 224), (300, 300), (112, 160)])
def test_a_live_cameras_big_shrink_on_two_cores_is_bit_identical(frame_size, out_size):
    """Two row bands, cut where INTER_AREA's output rows start exactly on an input row, equal one resize."""
    image = np.random.default_rng(4).integers(0, 256, (*frame_size, 3), dtype=np.uint8)
    spec = frame_spec(InputSpec(shape=[1, 3, *out_size]))
    cut = split_row(frame_size[0], out_size[0])
    assert cut is not None and 0 < cut[0] < out_size[0] and cut[1] * out_size[0] == cut[0] * frame_size[0]
    split, whole = Preprocessor(spec, split_shrinks=True), Preprocessor(spec)
    np.testing.assert_array_equal(split(image), whole(image))
    np.testing.assert_array_equal(whole(image), reference(image, spec))


def test_heights_without_an_exact_cut_are_not_split():
    assert split_row(481, 224) is None  # 481 and 224 share no factor: no output row starts on an input row
