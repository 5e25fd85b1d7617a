"""Which half of the fleet's model-signing key the server holds.

The server only ever verifies (model uploads) and hands out the public key (enrollment), so it needs no private
key. Where packages are signed on another machine (`edgefleet model keygen` and `model package` there), give the
server only the public PEM: `signing_public_key_file`, or a lone `<key>.pub.pem` beside the default key path.
A private key is made only when neither half exists (a single-machine fleet, `make demo`).
"""

from __future__ import annotations

import logging

from fleet_server.settings import ServerSettings
from models.signing import load_or_create_private_key, load_public_key, public_key_path_for, public_key_pem

log = logging.getLogger(__name__)


def signing_public_pem(settings: ServerSettings) -> str:
    """The public model-signing key as PEM text. Raises models.errors.SignatureError for an unreadable key."""
    if settings.signing_public_key_file is not None:
        return public_key_pem(load_public_key(settings.signing_public_key_file))
    private = settings.signing_key_path()
    public = public_key_path_for(private)
    if not private.exists() and public.exists():
        log.info("model-signing: public key only (%s); packages are signed elsewhere", public)
        return public_key_pem(load_public_key(public))
    return public_key_pem(load_or_create_private_key(private))
