"""Where edgefleet keeps its state. Resolved at start-up and passed in; nothing reads it at import time."""

from __future__ import annotations

import os
from pathlib import Path


def default_state_dir() -> Path:
    """`$EDGEFLEET_STATE_DIR`, else `~/.edgefleet`."""
    env = os.environ.get("EDGEFLEET_STATE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".edgefleet"


def signing_key_path(state_dir: Path) -> Path:
    """The fleet's Ed25519 model-signing private key (PEM). Training signs with it, the server hands out its
    public half at enrollment, agents verify every package against that."""
    return state_dir / "keys" / "model-signing.pem"


def signing_public_key_path(state_dir: Path) -> Path:
    return state_dir / "keys" / "model-signing.pub.pem"


def model_registry_dir(state_dir: Path) -> Path:
    return state_dir / "models"
