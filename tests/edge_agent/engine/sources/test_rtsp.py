import pytest

from edge_agent.errors import SourceError
from edge_agent.engine.sources import open_source
from edge_agent.engine.sources.rtsp import RtspSource, redact_url
from tests.services import free_port


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("rtsp://admin:s3cret@10.0.0.5:554/stream1", "rtsp://***@10.0.0.5:554/stream1"),
        ("rtsp://admin@cam.local/live", "rtsp://***@cam.local/live"),
        ("rtsp://cam.local:8554/live", "rtsp://cam.local:8554/live"),
        ("rtsps://u:p@[fe80::1]:322/a?channel=1&password=pw", "rtsps://***@[fe80::1]:322/a?channel=1&password=***"),
        ("rtsp://cam/x?token=abc", "rtsp://cam/x?token=***"),
    ],
)
def test_credentials_are_redacted(url, redacted):
    assert redact_url(url) == redacted


def test_identity_and_repr_never_show_the_password():
    source = open_source("rtsp://admin:hunter2@127.0.0.1:554/s")
    assert isinstance(source, RtspSource)
    assert "hunter2" not in source.identity and "hunter2" not in repr(source) and "admin" not in source.identity


@pytest.mark.parametrize(
    ("url", "message"),
    [("rtsp://:554/x", "no host"), ("rtsp://cam:99999/x", "invalid RTSP URL"), ("rtsp://cam:0/x", "port 0")],
)
def test_malformed_urls_are_refused_without_leaking_credentials(url, message):
    with pytest.raises(SourceError, match=message):
        open_source(url)


def test_bad_port_error_does_not_echo_the_password():
    with pytest.raises(SourceError) as err:
        open_source("rtsp://user:topsecret@cam:notaport/x")
    assert "topsecret" not in str(err.value)


def test_unsupported_transport_is_refused():
    with pytest.raises(SourceError, match="transport must be tcp or udp"):
        open_source("rtsp://cam/x", transport="http")


def test_connecting_to_a_closed_port_fails_cleanly_and_redacted():
    source = open_source(f"rtsp://user:topsecret@127.0.0.1:{free_port()}/stream", open_timeout_s=2.0)
    with pytest.raises(SourceError, match=r"cannot connect to rtsp://\*\*\*@127\.0\.0\.1") as err:
        source.open()
    assert "topsecret" not in str(err.value)
    assert source._cap is None  # nothing half-open is kept
