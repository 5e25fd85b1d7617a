"""The server's name for the shared URL-credential masking (edgefleet.redaction), kept so its callers need not
change."""

from edgefleet.redaction import MASK, redact, redact_text  # noqa: F401
