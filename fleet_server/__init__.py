"""The fleet server: enrollment and PKI, device registry, twin, API keys, audit log, MQTT bridge and broker."""
