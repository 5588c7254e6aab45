"""The serving model both deployables share: the catalog of what can be invoked, name parsing,
Lambda's error shapes, environment shapes and the specs environments specialize with. No I/O
framework here (no aiohttp, no Kubernetes client): the gateway, the operator and dev mode build
on it."""
