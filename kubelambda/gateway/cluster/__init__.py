"""Cluster mode of the gateway: its catalog source, its pod provider and the wiring of the two."""
