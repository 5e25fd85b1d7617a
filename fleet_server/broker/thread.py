"""`BrokerThread`: an `EmbeddedBroker` on its own event loop in a background thread, for synchronous
callers (the CLI, the demo, tests). amqtt must be created inside a running loop, so the broker is built on
that thread; `start()` returns once it listens (or raises why it could not)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from fleet_server.broker.auth import CredentialChecker
from fleet_server.broker.embedded import DEFAULT_PORT, DEFAULT_SESSION_EXPIRY_S, BrokerError, EmbeddedBroker


class BrokerThread:
    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, checker: CredentialChecker | None = None,
                 *, persistence_path: Path | None = None, session_expiry_s: int | None = DEFAULT_SESSION_EXPIRY_S,
                 start_timeout: float = 30.0) -> None:
        self._args = (host, port, checker)
        self._options = {"persistence_path": persistence_path, "session_expiry_s": session_expiry_s}
        self._start_timeout = start_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.broker: EmbeddedBroker | None = None
        self._url: str | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The port bound (kept after `stop`, so the same port can be started again)."""
        if self._port is None:
            raise BrokerError("the broker thread was never started")
        return self._port

    @property
    def url(self) -> str:
        if self._url is None:
            raise BrokerError("the broker thread was never started")
        return self._url

    def start(self) -> "BrokerThread":
        if self._thread is not None:
            raise BrokerError("the broker thread is already started")
        self._ready.clear()
        self._error = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="edgefleet-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._start_timeout):
            self.stop()
            raise BrokerError(f"the embedded broker did not start within {self._start_timeout}s")
        if self._error is not None:
            error = self._error
            self._join()
            raise error if isinstance(error, BrokerError) else BrokerError(str(error))
        return self

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)

        async def boot() -> None:
            host, port, checker = self._args
            broker = EmbeddedBroker(host, port, checker, **self._options)
            await broker.start()
            self.broker = broker
            self._port, self._url = broker.port, broker.url

        try:
            loop.run_until_complete(boot())
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that called start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    def disconnect(self, client_id: str, *, forget: bool = True, timeout: float = 10.0) -> bool:
        """Drop a client now (see `EmbeddedBroker.disconnect`)."""
        if self.broker is None:
            return False
        return self.broker.disconnect_threadsafe(client_id, forget=forget, timeout=timeout)

    def call(self, fn, *args):  # noqa: ANN001, ANN201 - run a sync function on the broker's loop (inspection)
        """Run `fn(*args)` on the broker's loop and return its result, so reads of amqtt state never race it."""
        loop = self._loop
        if loop is None or self.broker is None:
            raise BrokerError("the broker thread is not started")

        async def run():  # noqa: ANN202
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), loop).result(10)

    def stop(self) -> None:
        loop, broker = self._loop, self.broker
        if loop is not None and broker is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(broker.stop(), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)
        self._join()
        self.broker = None

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join(30)
        self._thread = None
        self._loop = None

    def __enter__(self) -> "BrokerThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
