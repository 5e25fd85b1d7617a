"""Follow nats-server's log file: the log is the only place nats-server says that it is ready, which port it
picked, and whether a reload (SIGHUP) was applied or refused, so the supervisor waits on its lines."""

from __future__ import annotations

import re
import subprocess
import time
from collections import deque
from pathlib import Path

from fleet_server.nats.errors import NatsError

READY = re.compile(r"\[INF\] Server is ready")
MQTT_LISTEN = re.compile(r"Listening for MQTT clients on (?:mqtt|tls)://(?P<host>[^\s]+):(?P<port>\d+)")
CLIENT_LISTEN = re.compile(r"Listening for client connections on (?P<host>[^\s]+):(?P<port>\d+)")
RELOADED = re.compile(r"\[INF\] Reloaded server configuration")
RELOAD_FAILED = re.compile(r"\[(?:ERR|FTL)\] Failed to reload server configuration: (?P<why>.*)")


class LogFollower:
    """Reads what was appended to the log since it was created (or since the last `mark`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = self._size()
        self._partial = ""
        self._pending: deque[str] = deque()

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def mark(self) -> None:
        """Forget everything logged so far: the next wait sees only newer lines."""
        self._offset = self._size()
        self._partial = ""
        self._pending.clear()

    def new_lines(self) -> list[str]:
        size = self._size()
        if size < self._offset:  # nats-server rotated the file (logfile_size_limit): read the new one whole
            self._offset, self._partial = 0, ""
        if size == self._offset:
            return []
        with self.path.open("rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read(size - self._offset)
        self._offset = size
        text = self._partial + chunk.decode("utf-8", errors="replace")
        lines = text.split("\n")
        self._partial = lines.pop()
        return lines

    def wait_for(self, pattern: re.Pattern[str], timeout: float, proc: subprocess.Popen[bytes],
                 fail: re.Pattern[str] | None = None) -> re.Match[str]:
        """The first new line matching `pattern`; NatsError with the log tail if `fail` matches, the process
        exits, or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            exited = proc.poll() is not None  # before reading, so its last lines are read before we give up
            self._pending.extend(self.new_lines())
            while self._pending:  # lines after a match stay for the next wait
                line = self._pending.popleft()
                if fail is not None and (bad := fail.search(line)):
                    raise NatsError(f"nats-server: {bad.group(0)}\n{tail(self.path)}")
                if found := pattern.search(line):
                    return found
            if exited:
                raise NatsError(f"nats-server exited with code {proc.returncode}:\n{tail(self.path)}")
            if time.monotonic() > deadline:
                raise NatsError(f"nats-server did not log {pattern.pattern!r} within {timeout:g}s:\n"
                                f"{tail(self.path)}")
            time.sleep(0.01)


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of the log, for error messages (the banner and config errors are usually there)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 8192))
            text = fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])
