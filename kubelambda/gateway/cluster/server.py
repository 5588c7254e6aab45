"""The gateway in cluster mode: the shared assembly fed by the watch layer, pods as environments.

The parts are dev mode's own (`kubelambda.gateway.assembly`); what differs is where the catalog
comes from (`ClusterCatalog`: the watch layer, rebuilt when a Function, Version or Alias changes)
and where environments come from (`ClusterProvider`: warm pods the operator keeps). The pool
keeps no generic environments of its own: the operator's warm pools are the generic
environments. Specs may use packageType Image (a pod runs the function's image) and code from
ConfigMaps; environment.secretKeyRefs are read from Kubernetes Secrets (`ClusterSecrets`,
get-only) and travel to an agent only inside the spec it is specialized with. Each invocation's
log tail is kept in the log buffer `kubelambda logs` reads (the full output stays in the pods'
logs). `/readyz` answers 200 once every watch has listed its objects and a catalog is
served (with `--ledger-namespace`: and the shared ledger has stored this replica's first
allotments: replicas then share one concurrency ledger, `kubelambda.gateway.ledger`). With
`--queue`, Event invocations go to the async subsystem, whose worker starts only after the first
catalog is built, so resumed events never meet an empty one.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import Gauge

from kubelambda.api.common import DEFAULT_REGION
from kubelambda.gateway.admission import PoolLimits
from kubelambda.gateway.assembly import Gateway, GatewaySettings
from kubelambda.gateway.asyncq.service import AsyncSettings
from kubelambda.gateway.auth.setup import build_guard
from kubelambda.gateway.cluster.provider import ClaimSettings, ClusterProvider
from kubelambda.gateway.cluster.source import ClusterCatalog
from kubelambda.gateway.ledger.sync import SharedLedger
from kubelambda.gateway.pool import PoolSettings
from kubelambda.kube.client import KubeApi
from kubelambda.kube.codes import ConfigMapCode
from kubelambda.kube.leases import LeaseStore
from kubelambda.kube.objects import KubeObjects
from kubelambda.kube.secrets import ClusterSecrets
from kubelambda.kube.view import ClusterView
from kubelambda.serving.codestore import CodeBucket, NoCodeStore, S3CodeStore
from kubelambda.serving.control.base import ControlSettings
from kubelambda.serving.control.service import ControlService
from kubelambda.serving.specs import SpecBuilder
from kubelambda.serving.urls import UrlDomain


def default_identity() -> str:
    """The gateway's pod name in a cluster (POD_NAME), else host and process id."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()[:40]}-{os.getpid()}"


@dataclass
class ClusterSettings:
    host: str = "0.0.0.0"
    port: int = 9000
    default_namespace: str = "default"
    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    limits: PoolLimits = field(default_factory=PoolLimits)
    keepalive: float = 300.0
    max_age: float = 7200.0
    region: str = DEFAULT_REGION
    identity: str = field(default_factory=default_identity)
    claim_timeout: float = 30.0
    lease: float = 60.0
    queue: str | None = None  # the async queue's URL; None: Event invocations are refused
    url_domain: UrlDomain = field(default_factory=UrlDomain)
    auth: frozenset[str] = frozenset()  # --auth modes; empty: none
    keys: Path | None = None  # --keys FILE
    sigv4_secret: str | None = None  # a Secret in this pod's namespace
    code_store: CodeBucket | None = None  # None: the control API refuses code uploads
    agent_key: bytes | None = None  # the key agents' tokens derive from (kube/agentauth.py)
    # Where replicas keep the shared ledger's Leases; None: this replica admits alone.
    ledger_namespace: str | None = None
    ledger_interval: float = 0.2
    ledger_heartbeat: float = 2.0


def cluster_gateway(settings: ClusterSettings, api: KubeApi | None = None) -> Gateway:
    """Raises kubernetes' ConfigException without credentials, ValueError for a bad --queue,
    KeysError for unusable SigV4 keys."""
    api = api or KubeApi.from_environment()
    view = ClusterView(api, settings.namespaces)
    claim = ClaimSettings(
        identity=settings.identity,
        claim_timeout=settings.claim_timeout,
        lease=settings.lease,
        agent_key=settings.agent_key,
    )
    provider = ClusterProvider(api, view, claim)
    code = ConfigMapCode(api)
    secrets = ClusterSecrets(api)
    source = ClusterCatalog(api, view, code, secrets)
    own_namespace = os.environ.get("POD_NAMESPACE", "default")
    guard = build_guard(
        settings.auth,
        region=settings.region,
        default_namespace=settings.default_namespace,
        cluster=True,
        api=lambda: api,
        keys_file=settings.keys,
        secret=(own_namespace, settings.sigv4_secret) if settings.sigv4_secret else None,
    )
    bucket = settings.code_store
    served: list[Gateway] = []  # the gateway, once built: its catalog is what Active means
    control = ControlService(
        KubeObjects(api, lambda: served[0].invoker.catalog if served else None),
        S3CodeStore(bucket) if bucket is not None else NoCodeStore(),
        ControlSettings(
            region=settings.region,
            default_namespace=settings.default_namespace,
            concurrency_total=settings.limits.total,
            unreserved_floor=settings.limits.unreserved_floor,
            function_url=settings.url_domain.url,
            refused_reservation=lambda ns, name: (
                served[0].invoker.refused_reservation(ns, name) if served else None
            ),
        ),
    )
    gateway = Gateway(
        GatewaySettings(
            host=settings.host,
            port=settings.port,
            default_namespace=settings.default_namespace,
            limits=settings.limits,
            pool=PoolSettings(
                generic_per_runtime=0,  # the operator's warm pools are the generic environments
                keepalive=settings.keepalive,
                max_age=settings.max_age,
                start_timeout=settings.claim_timeout,
            ),
            asynq=AsyncSettings(queue_url=settings.queue) if settings.queue else None,
            tail_logs=True,  # the agents' lines reach the gateway only as log tails
            url_domain=settings.url_domain,
        ),
        provider=provider,
        source=source,
        specs=SpecBuilder(
            region=settings.region, images=True, resolve=code.resolve, secrets=secrets.lookup
        ),
        background=[
            provider.renew_forever,
            provider.connect_ahead_forever,
            source.refresh_secrets_forever,
        ],
        guard=guard,
        control=control,
    )
    served.append(gateway)
    Gauge(
        "kubelambda_agent_connections_ahead",
        "Warm pods whose agent this replica keeps connections open to, for its next cold starts",
        registry=gateway.invoker.metrics.registry,
    ).set_function(lambda: len(provider.ahead))
    if settings.ledger_namespace:
        shared = SharedLedger(
            LeaseStore(api, settings.ledger_namespace),
            settings.identity,
            gateway.invoker.capacities,
            interval=settings.ledger_interval,
            heartbeat=settings.ledger_heartbeat,
        )
        gateway.invoker.shared = shared
        gateway.add_background(shared.run)
    return gateway
