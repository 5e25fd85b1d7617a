"""Which ImportErrors mean "an optional extra is not installed" and which mean "our own code is broken".

A device installs only ``edgefleet[agent]``, so a missing third-party module is an install choice and deserves a
"pip install" hint; a missing module of ours is a bug, and blaming the user's install would hide it. The CLI's
lazy commands and the engine's plug-in tables both draw this line here, the same way."""

from __future__ import annotations

OWN_PACKAGES = frozenset({"edgefleet", "models", "training", "fleet_server", "edge_agent"})


def is_missing_extra(error: ImportError) -> bool:
    """True when the module that failed is not ours (or unnamed, as when a module refuses to load by hand)."""
    return (error.name or "").split(".")[0] not in OWN_PACKAGES
