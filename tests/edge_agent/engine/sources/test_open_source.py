from __future__ import annotations

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


# Every built-in spec form, and the plug-in it went to when plugin_for still listed the forms itself.
BUILT_IN_FORMS = [
    ("synthetic", "synthetic"), ("SYNTHETIC", "synthetic"), ("  synthetic:64x48@5  ", "synthetic"),
    ("synthetic:cam-1", "synthetic"), ("rtsp://cam/x", "rtsp"), ("rtsps://u:p@cam:8554/s", "rtsp"),
    ("Rtsp://cam/x", "rtsp"), ("rtsp:cam", "rtsp"), ("/dev/video0", "v4l2"), ("/dev/v4l/by-id/usb-cam", "v4l2"),
    ("usb:0", "v4l2"), ("serial:ABC123", "v4l2"), ("path:pci-0000:00:14.0-usb-0:1:1.0", "v4l2"),
    ("v4l2:/dev/video2", "v4l2"), ("file:/x.mp4", "file"), ("FILE:/x.mp4", "file"), ("file:///x.mp4", "file"),
    ("clip.mp4", "file"), ("video", "file"), ("~/clips/a.mkv", "file"), ("C:video.mp4", "file"),
    ("USB:0", "file"), ("dev/video0", "file"),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "key"), BUILT_IN_FORMS)
def test_each_built_in_form_goes_to_the_same_plugin_as_before(spec, key):
    assert plugin_for(spec) == key


@pytest.mark.parametrize("spec", ["http://cam/video.mjpg", "HTTPS://cam/x", "udp://0.0.0.0:5000", "v4l://x"])
def test_a_url_no_plugin_takes_is_refused_with_its_scheme(spec):
    scheme = spec.split("://", 1)[0]
    with pytest.raises(SourceError, match=f"unsupported source URL scheme in {scheme}://\\.\\.\\. \\(use rtsp://\\)"):
        plugin_for(spec)


class _NumpyFrames:
    """A third-party plug-in that owns its specs: any ``*.npy`` path, and its own ``npyframes://`` URLs."""

    @classmethod
    def accepts(cls, spec: str) -> bool:
        return spec.endswith(".npy") or spec.startswith("npyframes://")

    @classmethod
    def from_spec(cls, spec: str, **options: object) -> _NumpyFrames:
        source = cls()
        source.identity = spec
        return source


class _KeyOnly:
    """A third-party plug-in that says nothing about its specs: reached by its ``key:...`` prefix only."""

    @classmethod
    def from_spec(cls, spec: str, **options: object) -> _KeyOnly:
        return cls()


class _Greedy:
    """Takes every spec, at the default priority: ties go to the built-ins, which registered first."""

    @classmethod
    def accepts(cls, spec: str) -> bool:
        return True

    @classmethod
    def from_spec(cls, spec: str, **options: object) -> _Greedy:
        return cls()


@pytest.fixture
def registered():
    """Register test plug-ins in the real table for one test, and take them out after it."""
    keys = []

    def register(key, plugin):
        SOURCES.register(key)(plugin)
        keys.append(key)

    yield register
    for key in keys:
        SOURCES.unregister(key)


def test_a_third_party_plugin_with_its_own_accepts_is_found(registered):
    assert plugin_for("frames.npy") == "file"
    with pytest.raises(SourceError, match="unsupported source URL scheme in npyframes://"):
        plugin_for("npyframes://a")
    registered("npyframes", _NumpyFrames)
    assert plugin_for("frames.npy") == "npyframes"
    assert plugin_for("npyframes://a") == "npyframes"
    source = open_source(" frames.npy ")
    assert isinstance(source, _NumpyFrames) and source.identity == "frames.npy"
    assert [plugin_for(spec) for spec, _ in BUILT_IN_FORMS] == [key for _, key in BUILT_IN_FORMS]


def test_a_third_party_plugin_without_accepts_is_reached_by_its_key_prefix(registered):
    registered("keyonly", _KeyOnly)
    assert plugin_for("keyonly:anything") == "keyonly"
    assert plugin_for("keyonly") == "file"
    assert isinstance(open_source("keyonly:x"), _KeyOnly)


def test_priority_orders_the_asking_and_the_file_source_stays_last(registered):
    registered("greedy", _Greedy)
    assert plugin_for("/dev/video0") == "v4l2" and plugin_for("rtsp://cam/x") == "rtsp"
    assert plugin_for("clip.mp4") == "greedy" and plugin_for("http://cam/x") == "greedy"
    _Greedy.priority = 10
    try:
        assert plugin_for("/dev/video0") == "greedy"
        assert plugin_for("file:/x.mp4") == "file"  # an explicit key: prefix names its plug-in whatever the ranks
    finally:
        del _Greedy.priority
