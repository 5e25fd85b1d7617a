"""The fleet-connected agent: pipeline + MQTT + twin + telemetry + outbox + commands, wired together.

Start-up is a flat list of ``init_*`` / ``start_*`` steps (read :meth:`Agent.start` top to bottom to know
what runs). Incoming messages are handled on one worker thread, never on paho's network thread, so a slow
pipeline rebuild cannot starve keep-alives; every handler failure is logged and reported, never fatal.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edgefleet import protocol
from edgefleet.backoff import Backoff
from edgefleet.protocol import (DEFAULT_OTA_BLOCK, Command, Event, PipelineConfig, Telemetry, TopicKind, TwinDesired,
                                TwinReported)
from edge_agent.fleet.command_context import agent_commands
from edge_agent.fleet.commands import CommandTable
from edge_agent.engine.interface import PipelineFactory, RunningPipeline, Selection, Sink, StagedModel
from edge_agent.engine.postprocess.results import Result
from edge_agent.fleet.host import PipelineHost
from edge_agent.fleet.mqtt_client import BrokerSettings, MqttLink
from edge_agent.fleet.ota import DEFAULT_RETRY, DEFAULT_WINDOW, OtaDownloader
from edge_agent.fleet.outbox import EVENT, TELEMETRY, Outbox
from edge_agent.fleet.slots import ModelSlots
from edge_agent.fleet.state import AgentConfig, StateDir
from edge_agent.fleet.telemetry import EventGate, TelemetryCollector
from edge_agent.fleet.twin import TwinManager
from edge_agent.fleet.update_watchdog import DEFAULT_STALL_S, UpdateWatchdog
from models.manifest import Manifest

log = logging.getLogger(__name__)
AGENT_VERSION = "0.1.0"
REPLY_WAIT_S = 5.0


class EnginePipelineFactory:
    """The real pipeline (camera + inference backend) from edge_agent.engine.builder, imported only when used.
    ``on_camera_event`` hears hot-plug news (a local camera unplugged or back) so the agent can report it."""

    needs_model = True

    def __init__(self, on_camera_event: Callable[[Any], None] | None = None) -> None:
        self.on_camera_event = on_camera_event

    def __call__(self, model_dir: Path | None, manifest: Manifest | None, source_spec: str, config: PipelineConfig,
                 sinks: Sequence[Sink]) -> tuple[RunningPipeline, Selection]:
        from edge_agent.engine.builder import build_pipeline

        return build_pipeline(model_dir, manifest, source_spec, config, sinks, on_camera_event=self.on_camera_event)

    def load_model(self, model_dir: Path, manifest: Manifest, config: PipelineConfig) -> StagedModel:
        from edge_agent.fleet.engine_swap import load_staged

        return load_staged(model_dir, manifest, config)

    def swap(self, pipeline: RunningPipeline, staged: StagedModel) -> None:
        from edge_agent.fleet.engine_swap import swap_staged

        swap_staged(pipeline, staged)

    def check_source(self, spec: str) -> None:
        """Parse a camera spec the way the engine will (raises SourceError); nothing is opened."""
        from edge_agent.engine.sources import open_source

        open_source(spec)


class Agent:
    """One device. ``start()`` returns once everything runs; ``stop()`` says goodbye (offline, retained)."""

    def __init__(self, config: AgentConfig, state_dir: Path, *, pipeline_factory: PipelineFactory | None = None,
                 source: str | None = None, agent_version: str = AGENT_VERSION, log_to_file: bool = False,
                 event_min_interval_s: float = 1.0, ota_block: int = DEFAULT_OTA_BLOCK,
                 ota_window: int = DEFAULT_WINDOW, ota_timeout_s: float = 10.0, ota_retry: Backoff = DEFAULT_RETRY,
                 update_stall_s: float = DEFAULT_STALL_S) -> None:
        self.config = config
        self.state = StateDir(state_dir)
        self.factory = pipeline_factory or EnginePipelineFactory(on_camera_event=self._on_camera_event)
        self.source = source or config.source
        self.agent_version = agent_version
        self.log_to_file = log_to_file
        self.gate = EventGate(event_min_interval_s)
        self.ota_options = {"block_size": ota_block, "window": ota_window, "timeout_s": ota_timeout_s,
                            "retry": ota_retry}
        self.update_stall_s = update_stall_s
        self.last_telemetry: Telemetry | None = None
        self.last_reported: TwinReported | None = None
        self.latest_result: Result | None = None  # the newest frame's outcome, for `snapshot`
        self.exit_code: int | None = None  # set by `restart_agent`: `agent run` exits with it
        self.rejected_messages = 0
        self._inbox: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._log_handler: logging.Handler | None = None

    # start-up, in order ------------------------------------------------------------------------
    def start(self) -> "Agent":
        self.init_logging()
        self.init_outbox()
        self.init_telemetry()
        self.init_pipeline_host()
        self.init_ota()
        self.init_twin()
        self.init_commands()
        self.init_mqtt()
        self.start_worker()
        self.start_pipeline()
        self.start_mqtt()
        self.start_ota()
        self.start_outbox()
        self.start_telemetry()
        return self

    def init_logging(self) -> None:
        if self.log_to_file:
            self.state.ensure()
            self._log_handler = logging.FileHandler(self.state.log_path)
            self._log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            self._log_handler.setLevel(logging.INFO)
            logger = logging.getLogger("edge_agent")
            logger.addHandler(self._log_handler)
            if logger.getEffectiveLevel() > logging.INFO:
                logger.setLevel(logging.INFO)

    def init_outbox(self) -> None:
        self.state.ensure()
        self.outbox = Outbox(self.state.outbox_path, max_messages=self.config.outbox_max_messages)

    def init_telemetry(self) -> None:
        self.collector = TelemetryCollector(self.config.device_id)

    def init_pipeline_host(self) -> None:
        self.host = PipelineHost(self.factory, [self._on_result])

    def init_ota(self) -> None:
        """Blocks arrive through the inbox worker; progress and completion go back through it to the twin."""
        self.ota = OtaDownloader(self.config.device_id, self.state.packages_dir,
                                 publish=lambda topic, payload: self.link.publish(topic, payload, qos=1),
                                 ready=lambda: self.link.subscribed.is_set(),
                                 on_progress=lambda status: self._inbox.put(("ota", None, status)),
                                 on_complete=lambda sha256: self._inbox.put(("ota_done", None, sha256)),
                                 **self.ota_options)
        self.watchdog = UpdateWatchdog(lambda *stall: self.twin.on_update_stalled(*stall), self.update_stall_s)

    def init_twin(self) -> None:
        self.slots = ModelSlots(self.state.slots_dir, self.state.signing_key_path, self.state.packages_dir)
        self.twin = TwinManager(self.host, self.state, self.slots, default_camera=self.source,
                                publish_reported=self._publish_reported, emit_event=self.emit_event,
                                downloader=self.ota, watchdog=self.watchdog)
        if self.source != self.config.source or self.twin.applied.desired_revision is None:
            self.twin.applied = self.twin.applied.model_copy(update={"camera": self.source})
        if self.twin.applied.desired_revision is None:
            interval = self.config.telemetry_interval_s
            pipeline = self.twin.applied.pipeline.model_copy(update={"telemetry_interval_s": interval})
            self.twin.applied = self.twin.applied.model_copy(update={"pipeline": pipeline})

    def init_commands(self) -> None:
        self.commands: CommandTable
        self.commands, self.command_context = agent_commands(self)

    def init_mqtt(self) -> None:
        settings = BrokerSettings.from_url(
            self.config.broker_url, username=self.config.mqtt_username,
            password=self.state.mqtt_password(self.config) or None, ca_file=_existing(self.state.ca_path),
            cert_file=_existing(self.state.cert_path), key_file=_existing(self.state.key_path))
        self.link = MqttLink(self.config.device_id, settings, agent_version=self.agent_version,
                             on_message=lambda t, m: self._inbox.put(("msg", t, m)),
                             on_reject=lambda t, r: self._inbox.put(("reject", t, r)),
                             control=self.state.control_verifier())
        self.link.on_connected.append(lambda: self._inbox.put(("connected", None, None)))
        self.link.on_session_lost.append(self._on_session_lost)
        self.link.on_published.append(self.outbox.acknowledged)

    def start_worker(self) -> None:
        self._spawn("inbox", self._work)

    def start_pipeline(self) -> None:
        self.twin.start()

    def start_mqtt(self) -> None:
        self.link.start()

    def start_ota(self) -> None:
        self.ota.start()
        self.watchdog.start()

    def start_outbox(self) -> None:
        def publish(topic: str, payload: bytes, retain: bool) -> tuple[int, bool]:
            info = self.link.publish(topic, payload, qos=1, retain=retain)
            return info.mid, info.rc in (0, 4)  # 4 = no connection: paho keeps it and sends on reconnect

        self.outbox.start(publish, self.link.connected.is_set)
        self.link.on_connected.append(self.outbox.wake)

    def start_telemetry(self) -> None:
        self._spawn("telemetry", self._telemetry_loop)

    # shutdown ----------------------------------------------------------------------------------
    def stop(self, reason: str = "agent stopped") -> None:
        self._stop.set()
        self._inbox.put(("stop", None, None))
        for thread in self._threads:
            thread.join(5)
        self.ota.stop()
        self.watchdog.stop()
        self.host.stop()
        self.outbox.stop()
        self.link.stop(reason)
        self.outbox.close()
        if self._log_handler is not None:
            logging.getLogger("edge_agent").removeHandler(self._log_handler)
            self._log_handler.close()

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Block until the broker has acknowledged the subscriptions (commands and twins will now arrive)."""
        return self.link.subscribed.wait(timeout)

    def run_forever(self) -> None:
        """Run until :meth:`stop` is called (run_cli wires SIGINT/SIGTERM to it) or a command asks for an exit."""
        self._stop.wait()

    # messages ----------------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            what, topic, payload = self._inbox.get()
            try:
                if what == "msg":
                    self._dispatch(topic, payload)
                elif what == "reject":
                    self._reject(topic, payload)
                elif what == "connected":
                    self.twin.report()
                elif what == "ota":
                    self.twin.set_ota_progress(payload)
                elif what == "ota_done":
                    self.twin.reapply(payload)
            except Exception:  # noqa: BLE001 - the worker must survive any handler bug
                log.exception("handling %s on %s failed", what, topic)

    def _dispatch(self, topic: protocol.Topic, message: Any) -> None:
        if isinstance(message, TwinDesired):
            self.twin.apply_desired(message)
        elif isinstance(message, Command):
            self._answer(topic.request_id, message)
        elif topic.kind is TopicKind.OTA_DATA:
            self.ota.on_block(topic.sha256, topic.offset, message)
        else:
            log.info("ignoring %s message", topic.kind.value)

    def _answer(self, request_id: str, command: Command) -> None:
        """Run (or recall) the command and publish its reply; a `restart_agent` then ends the agent's run."""
        reply = self.commands.handle(command, request_id)
        info = self.link.publish(protocol.cmd_reply_topic(self.config.device_id, request_id), reply.encode(), qos=1)
        if self.exit_code is not None and reply.ok:
            try:
                info.wait_for_publish(REPLY_WAIT_S)  # the reply leaves before the agent does
            except (RuntimeError, ValueError):
                log.warning("the reply to %s was not confirmed before exiting", request_id)
            log.warning("exiting with code %d on remote command", self.exit_code)
            self._stop.set()

    def _reject(self, topic: str, reason: str) -> None:
        self.rejected_messages += 1
        message = f"rejected message on {topic}: {reason}"
        self.emit_event(Event(kind="error", message=message[:1000], data={"topic": topic[:256]}))
        self.twin.record_error(message)

    # outputs -----------------------------------------------------------------------------------
    def _on_camera_event(self, camera_event: Any) -> None:
        """A local camera was unplugged or came back (edge_agent.engine.discovery): tell the fleet."""
        self.emit_event(Event(**camera_event.as_event_fields()))

    def _on_session_lost(self) -> None:
        """Tell the fleet: a lost session is either a broker that lost state or someone using our identity."""
        self.emit_event(Event(kind="connection", message="MQTT session lost on reconnect (another client used this "
                              "device's identity, or the broker lost its state); subscriptions renewed",
                              data={"sessions_lost": self.link.sessions_lost}))

    def emit_event(self, event: Event) -> None:
        self.outbox.enqueue(EVENT, protocol.events_topic(self.config.device_id), event.encode())

    def _publish_reported(self, reported: TwinReported) -> None:
        self.last_reported = reported
        self.link.publish(protocol.twin_reported_topic(self.config.device_id), reported.encode(), qos=1, retain=True)

    def _on_result(self, result: Result) -> None:
        self.latest_result = result
        for event in self.gate.events(result, self.twin.pipeline_config, self.twin.camera):
            self.emit_event(event)

    def _telemetry_loop(self) -> None:
        while not self._stop.wait(self.twin.pipeline_config.telemetry_interval_s):
            try:
                self.publish_telemetry()
            except Exception:  # noqa: BLE001
                log.exception("telemetry snapshot failed")

    def publish_telemetry(self) -> Telemetry:
        """Take a snapshot now and queue it (also the telemetry thread's tick)."""
        dropped, reported = self.outbox.dropped, self.outbox.drops_reported
        if dropped > reported:
            self.outbox.mark_drops_reported(dropped)
            self.emit_event(Event(kind="outbox", message=f"outbox full: {dropped - reported} message(s) dropped",
                                  data={"dropped_total": dropped, "dropped_since_last_report": dropped - reported}))
        model = self.twin.model
        selection = self.host.selection
        snapshot = self.collector.snapshot(
            self.host.stats(), model_name=model.manifest.name if model else None,
            model_version=model.manifest.version if model else None,
            backend=(selection.backend if selection else None), device=(selection.device if selection else None),
            camera_id=self.twin.camera, outbox_depth=self.outbox.depth, outbox_dropped=self.outbox.dropped)
        self.outbox.enqueue(TELEMETRY, protocol.telemetry_topic(self.config.device_id), snapshot.encode())
        self.last_telemetry = snapshot
        return snapshot

    def _spawn(self, name: str, target) -> None:
        thread = threading.Thread(target=target, name=f"{name}-{self.config.device_id}", daemon=True)
        thread.start()
        self._threads.append(thread)


def _existing(path: Path) -> Path | None:
    return path if path.exists() else None
