"""The fleet server: enrollment and PKI, device inventory, twin, API keys, audit log, MQTT bridge and broker."""
