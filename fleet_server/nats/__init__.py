"""The fleet server's private NATS broker (nats-server speaking MQTT 3.1.1): finding the binary, rendering
its configuration and users, and supervising the process."""

from fleet_server.nats.binary import MIN_VERSION, find_binary
from fleet_server.nats.broker import NatsBroker
from fleet_server.nats.config import DEFAULT_MQTT_PORT, NatsConfig, NatsLimits
from fleet_server.nats.errors import NatsError
from fleet_server.nats.users import BCRYPT_COST, SERVER_USER, DeviceUser, bcrypt_hash

__all__ = ["BCRYPT_COST", "DEFAULT_MQTT_PORT", "MIN_VERSION", "SERVER_USER", "DeviceUser", "NatsBroker",
           "NatsConfig", "NatsError", "NatsLimits", "bcrypt_hash", "find_binary"]
