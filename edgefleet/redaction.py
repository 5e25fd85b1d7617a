"""Masking credentials in URLs, e.g. a camera spec `rtsp://user:pass@host/stream` -> `rtsp://user:***@host/stream`.
Shared: the server masks views and its audit log with it, the agent its diagnostics.

Camera specs reach the server in desired and reported twins, telemetry, hardware facts and the audit record
of twin patches. Devices need the real URL (the desired twin is sent to them unchanged), and so do the people
who set it, but nobody needs it in the audit log, and a read-only viewer key (a dashboard) should not be able
to read the cameras' passwords. Masking is textual, so a URL inside an error message is masked too; it errs
on the side of masking too much (everything from the `:` after the user up to the last `@` of the word).
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*):[^\s]*@")


def redact_text(text: str) -> str:
    return _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)


def redact(value: Any) -> Any:
    """A copy of a JSON value with every URL password in its strings masked, at any depth."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: redact(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    return value
