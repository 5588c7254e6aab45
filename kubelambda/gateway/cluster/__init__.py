"""Cluster mode of the gateway: the watch layer, the pod provider and the server that wires them."""
