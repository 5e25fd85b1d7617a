"""The agent's state directory: identity (key, certificates), configuration, model slots and queues.

Everything the agent must keep across reboots lives here and nowhere else, so a device can be backed up,
wiped or re-enrolled by handling one directory. Secrets are written 0600 and every file is replaced
atomically (write a temporary file, fsync, ``os.replace``) so a power cut never leaves half a config.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from edgefleet.files import atomic_write
from edgefleet.paths import default_state_dir
from edgefleet.protocol import PipelineConfig
from edgefleet.protocol.control import ControlVerifier, ReplayGuard
from models.errors import SignatureError
from models.signing import load_public_key
from edge_agent.errors import ConfigError

CONFIG_NAME = "agent.json"
KEY_NAME = "device.key"
CSR_NAME = "device.csr"
CERT_NAME = "device.crt"
CA_NAME = "ca.crt"
SIGNING_KEY_NAME = "model-signing.pub.pem"
CONTROL_KEY_NAME = "server-control.pub.pem"  # pinned at enrollment: the key that seals desired twins and commands
CONTROL_SEQ_NAME = "control-seq.json"
PASSWORD_NAME = "mqtt.password"
APPLIED_NAME = "applied.json"
OUTBOX_NAME = "outbox.sqlite"
LOG_NAME = "agent.log"


def resolve_state_dir(state_dir: Path | None) -> Path:
    """``--state-dir`` when given, else ``<default state dir>/agent``."""
    return Path(state_dir).expanduser() if state_dir else default_state_dir() / "agent"


class AgentConfig(BaseModel):
    """``agent.json``: what enrollment learned plus local choices. The MQTT password lives in its own 0600 file."""

    model_config = ConfigDict(extra="forbid")

    device_id: str = Field(description="assigned by the server at enrollment; also the MQTT client id")
    server_url: str = Field(description="the fleet server's HTTP address used at enrollment")
    broker_url: str = Field(description="mqtt://host:port (username/password) or mqtts://host:port (mTLS)")
    mqtt_username: str = Field(description="MQTT user name; equal to device_id on the embedded broker")
    mqtt_password_file: str = Field(PASSWORD_NAME, description="file in the state dir holding the MQTT password")
    name: str | None = Field(None, description="human name given at enrollment")
    tags: dict[str, str] = Field(default_factory=dict, description="tags the server attached at enrollment")
    source: str = Field("synthetic", description="camera source to run until a desired twin names another")
    telemetry_interval_s: float = Field(10.0, gt=0, description="initial telemetry period; the twin may change it")
    outbox_max_messages: int = Field(10_000, ge=10, description="bound of the offline outbox; oldest telemetry drops first")
    allow_reboot: bool = Field(False, description="whether the remote `reboot` command may reboot this machine")
    reboot_command: list[str] = Field(default_factory=lambda: ["systemctl", "reboot"],
                                      description="what `reboot` runs when allowed")


class AppliedState(BaseModel):
    """What the agent last applied from a desired twin, so a restart while offline resumes it."""

    model_config = ConfigDict(extra="forbid")

    desired_revision: int | None = None
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    camera: str | None = None


class StateDir:
    """Paths and typed reads/writes of one agent state directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # paths ------------------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        return self.root / name

    @property
    def key_path(self) -> Path:
        return self.root / KEY_NAME

    @property
    def cert_path(self) -> Path:
        return self.root / CERT_NAME

    @property
    def ca_path(self) -> Path:
        return self.root / CA_NAME

    @property
    def csr_path(self) -> Path:
        return self.root / CSR_NAME

    @property
    def signing_key_path(self) -> Path:
        return self.root / SIGNING_KEY_NAME

    @property
    def control_key_path(self) -> Path:
        return self.root / CONTROL_KEY_NAME

    @property
    def control_seq_path(self) -> Path:
        return self.root / CONTROL_SEQ_NAME

    @property
    def slots_dir(self) -> Path:
        return self.root / "slots"

    @property
    def packages_dir(self) -> Path:
        return self.root / "packages"

    @property
    def outbox_path(self) -> Path:
        return self.root / OUTBOX_NAME

    @property
    def log_path(self) -> Path:
        return self.root / LOG_NAME

    def package_path(self, sha256: str) -> Path:
        return self.packages_dir / f"{sha256}.efpkg"

    # enrollment state -------------------------------------------------------------------------
    def is_enrolled(self) -> bool:
        return (self.root / CONFIG_NAME).exists()

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)

    def load_config(self) -> AgentConfig:
        path = self.root / CONFIG_NAME
        if not path.exists():
            raise ConfigError(f"{self.root} is not enrolled (no {CONFIG_NAME}); run `edgefleet agent enroll` first")
        try:
            return AgentConfig.model_validate_json(path.read_text())
        except ValueError as exc:
            raise ConfigError(f"{path} is not a valid agent config: {exc}") from None

    def save_config(self, config: AgentConfig) -> None:
        atomic_write(self.root / CONFIG_NAME, config.model_dump_json(indent=2) + "\n", 0o600)

    def mqtt_password(self, config: AgentConfig) -> str:
        path = self.root / config.mqtt_password_file
        return path.read_text().strip() if path.exists() else ""

    def control_verifier(self) -> ControlVerifier:
        """What checks the server's control messages: the key pinned at enrollment (none: all are refused, and
        the refusal says to re-enroll) and the replay guard kept beside it."""
        key = None
        if self.control_key_path.exists():
            try:
                key = load_public_key(self.control_key_path)
            except SignatureError as exc:
                raise ConfigError(f"the pinned server control key is unreadable: {exc}") from exc
        return ControlVerifier(key, ReplayGuard(self.control_seq_path))

    def save_password(self, password: str, name: str = PASSWORD_NAME) -> None:
        atomic_write(self.root / name, password, 0o600)

    def write_secret(self, path: Path, data: bytes | str) -> None:
        atomic_write(path, data, 0o600)

    def write_public(self, path: Path, data: bytes | str) -> None:
        atomic_write(path, data, 0o644)

    # applied desired state --------------------------------------------------------------------
    def load_applied(self) -> AppliedState | None:
        path = self.root / APPLIED_NAME
        if not path.exists():
            return None
        try:
            return AppliedState.model_validate(json.loads(path.read_text()))
        except ValueError:
            return None  # a stale or foreign file: the retained desired twin will bring the truth back

    def save_applied(self, applied: AppliedState) -> None:
        atomic_write(self.root / APPLIED_NAME, applied.model_dump_json(indent=2) + "\n")
