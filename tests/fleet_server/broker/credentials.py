"""A fixed table of broker logins for the tests: the embedded broker without a fleet database behind it.

The server's real checker (fleet_server.checker) reads the devices table; these tests exercise the broker's
login and topic rules on their own, so they hand it this table instead. `revoke` imitates decommissioning.
"""

from __future__ import annotations

import hmac


class StaticCredentials:
    """A `CredentialChecker` over a dict; compares in constant time like the real one."""

    def __init__(self, server_username: str, server_password: str, devices: dict[str, str] | None = None) -> None:
        self._server = (server_username, server_password)
        self._devices: dict[str, str] = dict(devices or {})

    def add(self, username: str, password: str) -> None:
        self._devices[username] = password

    def revoke(self, username: str) -> None:
        self._devices.pop(username, None)

    def is_server(self, username: str) -> bool:
        return hmac.compare_digest((username or "").encode(), self._server[0].encode())

    def check(self, username: str, password: str) -> bool:
        if not username or not password:
            return False
        if self.is_server(username):
            return hmac.compare_digest(password.encode(), self._server[1].encode())
        expected = self._devices.get(username)
        return expected is not None and hmac.compare_digest(password.encode(), expected.encode())
