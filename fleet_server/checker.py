"""Who may log in to the embedded broker: the server's own identity, or an active device with the password
it was issued at enrollment. Implements `fleet_server.broker.auth.CredentialChecker`."""

from __future__ import annotations

import hmac
import logging

from fleet_server import credentials
from fleet_server.db import Database, Device

log = logging.getLogger(__name__)

SERVER_USERNAME = "server"


class DatabaseCredentialChecker:
    """Looks every login up in the database, so a decommissioned device is refused at its next connect."""

    def __init__(self, db: Database, server_password: str, server_username: str = SERVER_USERNAME) -> None:
        self._db = db
        self._server_username = server_username
        self._server_hash = credentials.hash_secret(server_password)

    def is_server(self, username: str) -> bool:
        return hmac.compare_digest(username or "", self._server_username)

    def check(self, username: str, password: str) -> bool:
        if not username or not password:
            return False
        if self.is_server(username):
            return credentials.verify_secret(password, self._server_hash)
        try:
            with self._db.session() as session:
                device = session.get(Device, username)
                stored = device.mqtt_password_hash if device is not None and device.active else None
        except Exception:  # noqa: BLE001 - a database hiccup refuses the login, never crashes the broker
            log.exception("credential lookup for %s failed", username)
            return False
        return credentials.verify_secret(password, stored)
