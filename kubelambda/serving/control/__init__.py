"""The Lambda control API's model: served operations, request translation, answer shapes, the
state machine and the service over an object store and a code store (no aiohttp, no Kubernetes)."""
