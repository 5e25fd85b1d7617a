"""The fleet-connected half of the agent: enrollment, MQTT link, twin, model slots, outbox, telemetry, commands.

It drives the engine through one seam, edge_agent.engine.interface."""
