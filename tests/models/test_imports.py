"""A camera device verifies packages with only the `agent` extra: `models` must not pull in torch, the server, the
agent or training (DESIGN.md import rules)."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ["torch", "fastapi", "sqlalchemy", "fleet_server", "edge_agent", "training", "onnx", "openvino", "nncf"]


def test_importing_models_and_its_cli_loads_nothing_heavy() -> None:
    code = ("import sys, models, models.cli, models.registry, models.package, models.signing; "
            f"print(','.join(sorted(m for m in {FORBIDDEN!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""
