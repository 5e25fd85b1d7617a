"""The replies to recent request ids, so a redelivered command (QoS 1 after a lost PUBACK, or a broker that
resends a session's messages) runs once and is answered with the same reply.

Kept in memory (the last 64 replies, whole) and in the state dir (`command_replies.json`, the last 256 request
ids, with their reply when it is small), so an agent restarted by `restart_agent` or `reboot` does not run the
same command again when the broker hands it over a second time. A reply too large to keep on disk (a snapshot)
is answered after a restart with a refusal that says the command already ran.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from pathlib import Path

from edgefleet.files import atomic_write
from edgefleet.protocol import CommandReply, ProtocolError, decode

log = logging.getLogger(__name__)
FILE_NAME = "command_replies.json"
KEEP_IDS = 256
KEEP_REPLIES = 64
KEEP_ON_DISK_BYTES = 8 * 1024


class ReplyMemory:
    """request id -> reply, bounded, persisted after every new reply (commands are rare: the write is cheap)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._ids: OrderedDict[str, str | None] = OrderedDict()  # id -> encoded reply when small, else None
        self._replies: OrderedDict[str, CommandReply] = OrderedDict()
        self._load()

    def _load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            stored = json.loads(self.path.read_text())
            for request_id, encoded in stored.get("replies", []):
                self._ids[str(request_id)] = encoded if isinstance(encoded, str) else None
        except (ValueError, TypeError, AttributeError) as exc:
            log.warning("ignoring unreadable %s: %s", self.path, exc)  # forgetting only risks a rerun

    def get(self, request_id: str) -> CommandReply | None:
        with self._lock:
            if request_id in self._replies:
                return self._replies[request_id]
            if request_id not in self._ids:
                return None
            encoded = self._ids[request_id]
        if encoded is not None:
            try:
                return decode(CommandReply, encoded)
            except ProtocolError:
                pass
        return CommandReply(ok=False, error=f"request {request_id} already ran before this agent restarted; its "
                                            f"reply was not kept (over {KEEP_ON_DISK_BYTES} bytes)")

    def remember(self, request_id: str, reply: CommandReply) -> None:
        encoded = reply.encode().decode("utf-8")
        with self._lock:
            self._replies[request_id] = reply
            while len(self._replies) > KEEP_REPLIES:
                self._replies.popitem(last=False)
            self._ids[request_id] = encoded if len(encoded) <= KEEP_ON_DISK_BYTES else None
            while len(self._ids) > KEEP_IDS:
                self._ids.popitem(last=False)
            snapshot = list(self._ids.items())
        self._save(snapshot)

    def _save(self, items: list[tuple[str, str | None]]) -> None:
        if self.path is None:
            return
        try:
            atomic_write(self.path, json.dumps({"replies": items}), 0o600)
        except OSError as exc:
            log.warning("could not save %s: %s", self.path, exc)
