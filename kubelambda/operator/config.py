"""The operator's configuration: what its flags say, checked and typed. Pure (no I/O).

`RUNTIME=VALUE` flags (`--runtime-image`, `--warm-pool`) are parsed here so that a typo in a
runtime name fails at start with the flag named, rather than leaving a pool silently empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kubelambda.api.common import DEFAULT_REGION, RUNTIMES, is_digits
from kubelambda.serving.shape import PodShape
from kubelambda.serving.urls import UrlDomain


class ConfigError(ValueError):
    """A flag has an invalid value; the message names the flag."""


def parse_pairs(flag: str, values: Iterable[str]) -> dict[str, str]:
    """`RUNTIME=VALUE` items into a dict; the runtime must be one we serve."""
    pairs: dict[str, str] = {}
    for item in values:
        runtime, sep, value = item.partition("=")
        if not sep or not runtime or not value:
            raise ConfigError(f"{flag}: expected RUNTIME=VALUE, got {item!r}")
        if runtime not in RUNTIMES:
            raise ConfigError(f"{flag}: unknown runtime {runtime!r}; one of {', '.join(RUNTIMES)}")
        pairs[runtime] = value
    return pairs


def parse_counts(flag: str, values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for runtime, value in parse_pairs(flag, values).items():
        if not is_digits(value):
            raise ConfigError(f"{flag}: {runtime}={value!r}: the size must be a whole number >= 0")
        counts[runtime] = int(value)
    return counts


@dataclass(frozen=True)
class OperatorConfig:
    agent_image: str
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    runtime_images: Mapping[str, str] = field(default_factory=dict)
    warm_pool: Mapping[str, int] = field(default_factory=dict)
    idle_keepalive: float = 300.0
    max_age: float = 7200.0
    claim_lease: float = 60.0  # a claim not renewed for this long belongs to a gone gateway
    start_timeout: float = 120.0  # a pod not Ready after this is broken
    # A short warm pool with free pods left is topped up this long after it fell short, so the
    # replacement does not start during the cold start that took the pod (operator/refill.py).
    refill_delay: float = 0.5
    refill_floor: int = 1  # below this many free Ready pods a pool is topped up at once
    generic_memory: int = 512  # MB of each generic warm pod (CPU follows)
    generic_ephemeral: int = 512  # MB of /tmp of each generic warm pod
    function_warm: int = 1  # warm pods kept per function whose shape no generic pod fits
    region: str = DEFAULT_REGION
    url_domain: UrlDomain = field(default_factory=UrlDomain)  # how status.url is spelled
    agent_key: bytes | None = None  # derives each agent's control-API token (agentauth.py)
    # The agent's own share of a function pod: its memory (MB; it peaks near 60 MB at rest) and
    # its CPU request (millicores). With --cpu-limits, CPU is also capped at the requests.
    agent_memory: int = 128
    agent_cpu: int = 100
    cpu_limits: bool = False  # off: Lambda bursts CPU during init; a 73m cap makes it seconds
    readiness_period: int = 2  # seconds between readiness probes of a function pod
    home: str | None = None  # the operator's own (release) namespace: never serves functions
    pod_owner: str | None = None  # a ClusterRole owning generic pods (gone on uninstall)
    # ServiceAccounts a Function's `role` may name without the opt-in annotation: `name` (in
    # any served namespace) or `namespace/name` (the chart's `functionRoles`).
    assumable_roles: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.agent_image:
            raise ConfigError("--agent-image is required")
        if self.idle_keepalive <= 0 or self.max_age <= 0 or self.claim_lease <= 0:
            raise ConfigError("--idle-keepalive, --max-age and --claim-lease must be > 0")
        if not 128 <= self.generic_memory <= 10240:
            raise ConfigError("--generic-memory must be between 128 and 10240 (MB)")
        if not 512 <= self.generic_ephemeral <= 10240:
            raise ConfigError("--generic-ephemeral-storage must be between 512 and 10240 (MB)")
        if not 0 <= self.refill_delay <= 10:
            raise ConfigError("--refill-delay must be between 0 and 10 (seconds)")
        if self.refill_floor < 1:
            raise ConfigError("--refill-floor must be >= 1")
        if self.function_warm < 0:
            raise ConfigError("--function-warm-pool must be >= 0")
        if not 64 <= self.agent_memory <= 4096:
            raise ConfigError("--agent-memory must be between 64 and 4096 (MB)")
        if not 10 <= self.agent_cpu <= 4000:
            raise ConfigError("--agent-cpu must be between 10 and 4000 (millicores)")
        if not 1 <= self.readiness_period <= 60:
            raise ConfigError("--readiness-period must be between 1 and 60 (seconds)")
        for role in self.assumable_roles:
            ns, sep, name = role.rpartition("/")
            if not name or (sep and not ns) or "/" in ns:
                raise ConfigError(f"--assumable-role: expected [NAMESPACE/]NAME, got {role!r}")
        if self.home and self.home in self.namespaces:
            raise ConfigError(
                f"--namespace={self.home}: the operator's own namespace never serves functions "
                "(its ServiceAccount could be assumed by a Function's role)"
            )

    @property
    def all_namespaces(self) -> bool:
        return not self.namespaces

    def serves(self, namespace: str) -> bool:
        if self.home and namespace == self.home:
            return False
        return self.all_namespaces or namespace in self.namespaces

    def may_assume(self, namespace: str, role: str) -> bool:
        """Whether the values list lets a Function in `namespace` run as ServiceAccount `role`."""
        return role in self.assumable_roles or f"{namespace}/{role}" in self.assumable_roles

    def generic_shape(self, runtime: str) -> PodShape:
        return PodShape(runtime, self.generic_memory, self.generic_ephemeral)
