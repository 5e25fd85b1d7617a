"""A local camera in the fleet agent's pipeline survives being unplugged: the pipeline waits, says why, and
resumes on the same model when udev reports the same serial again (synthetic udev events; no hardware here)."""

from __future__ import annotations

import queue
import time

import pyudev

from edge_agent.engine.capture_state import ReconnectPolicy
from edge_agent.engine.discovery import DeviceEventQueue, list_cameras
from edge_agent.engine.builder import build_pipeline
from edgefleet.protocol import Event, PipelineConfig
from tests.edge_agent.engine.discovery.test_manager import SyntheticCameras
from tests.edge_agent.engine.discovery.udev_devices import DeviceListContext, synthetic_device
from tests.edge_agent.engine.inference_fixtures import color_model  # noqa: F401
from tests.waiting import wait_for

FAST = ReconnectPolicy(initial_delay_s=0.0, max_delay_s=0.0, jitter=0.0, device_poll_s=0.05)


def test_an_unplugged_camera_pauses_the_pipeline_and_its_return_resumes_it(color_model):
    model_dir, manifest = color_model
    context = pyudev.Context()
    events, factory, heard = DeviceEventQueue(), SyntheticCameras(), queue.Queue()
    plugged = [synthetic_device(context, devnode="/dev/video3", serial="CAM-A")]
    results = []
    pipeline, _ = build_pipeline(
        model_dir, manifest, "/dev/video3", PipelineConfig(), [results.append], on_camera_event=heard.put,
        camera_options={"source_factory": factory, "monitor": events, "reconnect": FAST,
                        "cameras": lambda: list_cameras(DeviceListContext(plugged))},
    )
    pipeline.start()
    try:
        wait_for(lambda: len(results) >= 3)
        events.push(synthetic_device(context, action="remove", devnode="/dev/video3", serial="CAM-A"))
        removed = heard.get(timeout=5)
        assert removed.name == "camera_removed" and removed.camera_id == "serial:CAM-A"
        assert Event(**removed.as_event_fields()).data["serial"] == "CAM-A"
        wait_for(lambda: pipeline.stats().camera_state == "waiting_for_device")
        paused_at = len(results)
        time.sleep(0.3)
        assert len(results) <= paused_at + 4  # at most what was already in flight

        events.push(synthetic_device(context, action="add", devnode="/dev/video5", serial="CAM-A"))
        assert heard.get(timeout=5).name == "camera_returned"
        wait_for(lambda: len(results) >= paused_at + 10)
        stats = pipeline.stats()
        assert stats.camera_state == "streaming"
        assert [r.frame_index for r in results] == sorted(r.frame_index for r in results)  # still monotonic
        assert [spec for spec, _ in factory.built] == ["/dev/video3", "/dev/video5"]
    finally:
        pipeline.stop()
