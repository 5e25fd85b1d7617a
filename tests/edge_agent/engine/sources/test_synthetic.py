import numpy as np
import pytest

from edge_agent.errors import SourceError
from edge_agent.engine.sources import FrameSource, open_source
from edge_agent.engine.sources.synthetic import SyntheticSource, parse_synthetic_spec


class FakeClock:
    """Time that only moves when the source sleeps: pacing is checked without timing anything."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def read_frames(source: SyntheticSource, n: int) -> list[np.ndarray]:
    source.open()
    try:
        return [source.read() for _ in range(n)]
    finally:
        source.close()


def test_same_seed_gives_identical_frames():
    a = read_frames(SyntheticSource(96, 64, seed=7, realtime=False), 5)
    b = read_frames(SyntheticSource(96, 64, seed=7, realtime=False), 5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_render_is_a_pure_function_of_index():
    source = SyntheticSource(96, 64, seed=3, realtime=False)
    frames = read_frames(source, 4)
    assert np.array_equal(source.render(2), frames[2])


def test_frames_move_and_differ_by_seed():
    frames = read_frames(SyntheticSource(96, 64, realtime=False), 3)
    assert not np.array_equal(frames[0], frames[1])
    other = read_frames(SyntheticSource(96, 64, seed=1, realtime=False), 1)[0]
    assert not np.array_equal(frames[0], other)


def test_frame_number_is_drawn_in():
    source = SyntheticSource(160, 120, realtime=False)
    # same frame geometry, different number drawn: the text corner differs between frame 1 and frame 11
    corner = (slice(80, 120), slice(0, 60))
    assert not np.array_equal(source.render(1)[corner], source.render(11)[corner])


def test_frames_are_bgr_uint8_of_the_requested_size():
    frame = read_frames(SyntheticSource(80, 60, realtime=False), 1)[0]
    assert frame.shape == (60, 80, 3) and frame.dtype == np.uint8


def test_realtime_paces_reads_at_fps():
    clock = FakeClock()
    source = SyntheticSource(32, 32, fps=10, clock=clock.clock, sleep=clock.sleep)
    read_frames(source, 11)
    assert clock.sleeps == pytest.approx([0.1] * 10)
    assert clock.now == pytest.approx(101.0)


def test_a_late_reader_is_not_given_a_burst_of_frames():
    clock = FakeClock()
    source = SyntheticSource(32, 32, fps=10, clock=clock.clock, sleep=clock.sleep)
    source.open()
    source.read()
    clock.now += 5.0  # the consumer stalled for 50 frame periods
    source.read()
    source.read()
    assert clock.sleeps == pytest.approx([0.1])


def test_unpaced_source_never_sleeps_and_is_not_live():
    clock = FakeClock()
    source = SyntheticSource(32, 32, fps=10, realtime=False, clock=clock.clock, sleep=clock.sleep)
    props = source.open()
    for _ in range(5):
        source.read()
    assert clock.sleeps == [] and props.is_live is False


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("synthetic", (None, None, None)), ("synthetic:64x48", (64, 48, None)), ("synthetic:64x48@15", (64, 48, 15.0)),
     ("synthetic:@7.5", (None, None, 7.5))],
)  # fmt: skip
def test_spec_forms(spec, expected):
    assert parse_synthetic_spec(spec) == expected


@pytest.mark.parametrize("spec", ["synthetic:64", "synthetic:12ab", "synthetic:64x48@", "synthetic:64x48@-3", "synthetic:a b"])
def test_bad_spec_is_a_clear_error(spec):
    with pytest.raises(SourceError, match="bad synthetic source spec"):
        open_source(spec)


def test_open_source_builds_a_frame_source_with_stable_identity():
    source = open_source("synthetic:64x48@15", seed=2)
    assert isinstance(source, FrameSource)
    assert (source.width, source.height, source.fps) == (64, 48, 15.0)
    assert source.identity == "synthetic:64x48@15/seed2" == open_source("synthetic:64x48@15", seed=2).identity


def test_reading_before_open_is_a_source_error():
    with pytest.raises(SourceError, match="not open"):
        SyntheticSource(32, 32).read()


def test_absurd_size_is_refused():
    with pytest.raises(SourceError, match="out of range"):
        SyntheticSource(4, 4)


def test_named_synthetic_cameras_differ_and_keep_their_name_as_identity():
    a, b = open_source("synthetic:door", realtime=False), open_source("synthetic:yard", realtime=False)
    assert (a.identity, b.identity) == ("synthetic:door", "synthetic:yard")
    assert not np.array_equal(a.render(0), b.render(0))
    assert np.array_equal(a.render(3), open_source("synthetic:door").render(3))
