import pytest

from edge_agent.errors import SourceError
from edge_agent.engine.sources import SOURCES, open_source, plugin_for


def test_every_built_in_plugin_is_registered():
    assert {"synthetic", "file", "v4l2", "rtsp"} <= set(SOURCES.keys())


@pytest.mark.parametrize(
    ("spec", "key"),
    [("synthetic", "synthetic"), ("synthetic:64x48@5", "synthetic"), ("clip.mp4", "file"), ("/tmp/a b.mkv", "file"),
     ("file:/x.mp4", "file"), ("/dev/video0", "v4l2"), ("usb:1", "v4l2"), ("serial:ABC", "v4l2"),
     ("rtsp://cam/x", "rtsp"), ("RTSPS://cam/x", "rtsp"), ("C:video.mp4", "file")],
)  # fmt: skip
def test_spec_picks_the_plugin(spec, key):
    assert plugin_for(spec) == key


@pytest.mark.parametrize("spec", ["", "   "])
def test_empty_spec_is_refused(spec):
    with pytest.raises(SourceError, match="empty source spec"):
        open_source(spec)


def test_unknown_url_scheme_is_refused():
    with pytest.raises(SourceError, match="unsupported source URL scheme in http://"):
        open_source("http://cam/video.mjpg")
