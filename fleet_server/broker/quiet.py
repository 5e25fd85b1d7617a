"""Keep amqtt's logging useful: it logs every connection at INFO and some refused/reset clients with a
traceback. Our plug-ins log each refusal once, at INFO, with the reason; amqtt's own lines for those cases
are lowered to DEBUG here. Anything else amqtt says at WARNING or above still gets through."""

from __future__ import annotations

import logging

_CHATTY = ("amqtt", "amqtt.broker", "amqtt.broker.plugins", "amqtt.mqtt.protocol.handler",
           "amqtt.mqtt.protocol.broker_handler", "transitions.core")

# substrings of amqtt messages that only restate a refusal or a client that went away
_EXPECTED = (
    "Failed to initialize client session",
    "Error while handling client session",
    "Connection closed",
    "ConnectionResetError",
    "Connection reset by peer",
    "BrokenPipeError",
    "is reconnecting too quickly",
    "already connected, performing take-over",
    "Unhandled exception in reader coro",
    "Can't read first packet",
    "not allowed to publish",
    "No data from",
)


class _DemoteExpected(logging.Filter):
    """Turn amqtt's records about refused or vanished clients into DEBUG records (dropped unless debugging)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.DEBUG and record.levelno < logging.ERROR + 10:
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                text += " " + type(record.exc_info[1]).__name__ + " " + str(record.exc_info[1])
            if any(s in text for s in _EXPECTED):
                if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
                    return False
                record.levelno, record.levelname = logging.DEBUG, "DEBUG"
                record.exc_info, record.exc_text = None, None
        return True


_FILTER = _DemoteExpected()


def quieten_amqtt() -> None:
    """Idempotent. Loggers a user configured explicitly (level set) keep their level."""
    for name in _CHATTY:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
