from pathlib import Path

import pytest

from edge_agent.errors import EndOfStream, SourceError
from edge_agent.engine.sources import open_source
from edge_agent.engine.sources.video_file import VideoFileSource
from tests.edge_agent.engine.sources.videos import HEIGHT, WIDTH, grey_level, write_video


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "clip.mp4", frames=5)


def test_reads_every_frame_in_order_then_ends(video):
    source = open_source(str(video))
    props = source.open()
    assert (props.width, props.height, props.is_live) == (WIDTH, HEIGHT, False)
    levels = [grey_level(source.read()) for _ in range(5)]
    assert levels == [0, 1, 2, 3, 4]
    with pytest.raises(EndOfStream, match=str(video)):
        source.read()
    source.close()


def test_loop_wraps_to_the_first_frame(video):
    source = open_source(str(video), loop=True)
    source.open()
    levels = [grey_level(source.read()) for _ in range(12)]
    source.close()
    assert levels == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]


def test_file_prefix_and_identity_is_the_absolute_path(video):
    source = open_source(f"file:{video}")
    assert isinstance(source, VideoFileSource)
    assert source.identity == f"file:{video.resolve()}"


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(SourceError, match=f"video file not found: {missing}"):
        open_source(str(missing))


def test_a_directory_is_not_a_video(tmp_path):
    with pytest.raises(SourceError, match="is not a file"):
        open_source(str(tmp_path))


def test_undecodable_file_is_a_clear_error_on_open(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    source = open_source(str(junk))
    with pytest.raises(SourceError, match=f"cannot open video file {junk}"):
        source.open()


def test_file_deleted_after_building_the_source_fails_on_open(video):
    source = open_source(str(video))
    video.unlink()
    with pytest.raises(SourceError, match="video file not found"):
        source.open()


def test_open_is_idempotent_and_close_releases(video):
    source = open_source(str(video))
    first = source.open()
    assert source.open() is first
    source.read()
    source.close()
    assert source._cap is None
    source.open()
    assert grey_level(source.read()) == 0  # reopening starts from the beginning
    source.close()


def test_unknown_option_is_a_source_error(video):
    with pytest.raises(SourceError, match="bad options for file source"):
        open_source(str(video), speed=2)
