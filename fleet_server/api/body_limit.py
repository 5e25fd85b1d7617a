"""A request body size limit for the whole app, as ASGI middleware: nothing behind it ever holds more than
the limit of a request body in memory, whatever the route or the framework's parsing does.

A declared `Content-Length` over the limit is refused at once, before any of the body is read; a body
without one (chunked) is counted as it streams and refused as soon as it passes the limit. Either way the
answer is 413 with the standard error body. Routes that must take more (a model upload) get a larger limit
by path prefix in `larger`, so the default can stay small for everything else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleet_server.api.errors import fleet_error_response
from fleet_server.errors import PayloadTooLarge

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class _BodyTooLarge(Exception):
    """Raised from `receive` to stop the app reading; the middleware answers instead of the app."""


@dataclass
class _Progress:
    received: int = 0
    exceeded: bool = False
    started: bool = False


class BodyLimit:
    """`limit` bytes for every request, or the limit of the longest matching path prefix in `larger`.
    `on_refused(scope)` is told of each refusal (a metrics counter)."""

    def __init__(self, app: ASGIApp, limit: int = DEFAULT_MAX_BODY_BYTES, larger: Mapping[str, int] | None = None,
                 on_refused: Callable[[Scope], None] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.larger = dict(larger or {})
        self.on_refused = on_refused

    def limit_for(self, path: str) -> int:
        matches = [prefix for prefix in self.larger if path.startswith(prefix)]
        return self.larger[max(matches, key=len)] if matches else self.limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, receive, send, limit)
            return
        progress = _Progress()

        async def counted_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                progress.received += len(message.get("body", b""))
                if progress.received > limit:
                    progress.exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if progress.exceeded:  # the app's answer to a body it never got whole (FastAPI makes it a 400)
                return
            if message["type"] == "http.response.start":
                progress.started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not progress.exceeded:
                raise
        if progress.exceeded and not progress.started:
            await self._refuse(scope, receive, send, limit)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        if self.on_refused is not None:
            self.on_refused(scope)
        response = fleet_error_response(PayloadTooLarge(f"request body over the limit of {limit} bytes"))
        response.headers["Connection"] = "close"  # the rest of the body is not read; do not reuse the connection
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None  # servers refuse a malformed one before the app; anything else is counted as it streams
