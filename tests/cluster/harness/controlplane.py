"""The real control plane on loopback: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler, built by `make tools` into `.tools/bin/`, started as child processes.

`ControlPlane.start()` makes the PKI, starts each component on free 127.0.0.1 ports with its log in
`<workdir>/logs/`, and returns once the apiserver is ready and both controllers answer /healthz;
`stop()` ends them by PID (SIGTERM, then SIGKILL), newest first. Each child is also asked to die
with the thread that started it (PR_SET_PDEATHSIG), so a killed test run leaves nothing behind.
Authorization is Node,RBAC; admission is the default set (PodSecurity included) plus
NodeRestriction, as kubeadm configures it.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import functools
import json
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from tests.cluster.harness.pki import Pair, Pki

REPO = Path(__file__).resolve().parents[3]
TOOLS = REPO / ".tools" / "bin"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
ISSUER = "https://kubernetes.default.svc.cluster.local"
_PR_SET_PDEATHSIG = 1


class ToolsMissing(RuntimeError):
    """The binaries are not built: `make tools` builds them."""


def binary(name: str) -> Path:
    path = TOOLS / name
    if not path.is_file():
        raise ToolsMissing(f"{path} is missing: run `make tools` (it builds {', '.join(BINARIES)})")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def kubeconfig(server: str, ca: Path, pair: Pair | None, *, token_file: Path | None = None) -> str:
    """A kubeconfig with its certificates embedded (or a token file read on every use)."""
    user: dict[str, str] = {}
    if pair is not None:
        user["client-certificate-data"] = base64.b64encode(pair.cert.read_bytes()).decode()
        user["client-key-data"] = base64.b64encode(pair.key.read_bytes()).decode()
    if token_file is not None:
        user["tokenFile"] = str(token_file)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "harness",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca.read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": "user", "user": user}],
        "contexts": [{"name": "harness", "context": {"cluster": "harness", "user": "user"}}],
        "current-context": "harness",
    }
    return yaml.safe_dump(config)


@dataclass
class Component:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    out: IO[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid


class ControlPlane:
    def __init__(
        self,
        workdir: Path,
        *,
        node_name: str = "harness-node",
        extra_apiserver: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.node_name = node_name
        self.extra_apiserver = extra_apiserver
        self.components: list[Component] = []
        self.ports: list[int] = []
        self.pki: Pki | None = None
        self.api_port = 0
        self.etcd_port = 0

    # --- addresses and credentials ------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def node_kubeconfig(self) -> Path:
        return self.workdir / "node.kubeconfig"

    @property
    def ca(self) -> Path:
        assert self.pki is not None
        return self.pki.ca

    @property
    def pids(self) -> list[int]:
        return [c.pid for c in self.components]

    def ssl_context(self, pair: Pair | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        if pair is not None:
            context.load_cert_chain(str(pair.cert), str(pair.key))
        return context

    # --- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 120.0) -> None:
        for name in BINARIES:
            binary(name)
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        try:
            self.pki = Pki(self.workdir / "pki", self.node_name)
            self._start_etcd(timeout)
            self._start_apiserver(timeout)
            self._start_controllers(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        # One at a time, newest first: the apiserver drains while etcd still answers.
        for component in reversed(self.components):
            if component.proc.poll() is None:
                component.proc.send_signal(signal.SIGTERM)
            try:
                component.proc.wait(15)
            except subprocess.TimeoutExpired:
                component.proc.kill()
                component.proc.wait(10)
            component.out.close()
        self.components.clear()

    def logs(self, name: str, tail: int = 4000) -> str:
        for component in self.components:
            if component.name == name:
                return component.log.read_text(errors="replace")[-tail:]
        return ""

    # --- the components -----------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> Component:
        log = self.workdir / "logs" / f"{name}.log"
        out = log.open("ab")
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            preexec_fn=_die_with_parent,
        )
        component = Component(name, proc, log, out)
        self.components.append(component)
        return component

    def _port(self) -> int:
        port = free_port()
        self.ports.append(port)
        return port

    def _wait(
        self, component: Component, check: Callable[[], bool], timeout: float, what: str
    ) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if component.proc.poll() is not None:
                raise RuntimeError(
                    f"{component.name} exited with {component.proc.returncode} before {what}:\n"
                    + component.log.read_text(errors="replace")[-4000:]
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{component.name}: no {what} within {timeout:g} s:\n"
                    + component.log.read_text(errors="replace")[-4000:]
                )
            time.sleep(0.1)

    def _start_etcd(self, timeout: float) -> None:
        self.etcd_port, peer = self._port(), self._port()
        client, peer_url = self.etcd_url, f"http://127.0.0.1:{peer}"
        etcd = self._spawn(
            "etcd",
            [
                str(binary("etcd")),
                "--name=harness",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=harness={peer_url}",
                "--unsafe-no-fsync",  # test data: durability across power loss is not wanted
                "--log-level=warn",
            ],
        )
        self._wait(etcd, lambda: _http_ok(f"{client}/health"), timeout, "health")

    def _start_apiserver(self, timeout: float) -> None:
        assert self.pki is not None
        pki = self.pki
        self.api_port = self._port()
        api = self._spawn(
            "kube-apiserver",
            [
                str(binary("kube-apiserver")),
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={pki.apiserver.cert}",
                f"--tls-private-key-file={pki.apiserver.key}",
                f"--client-ca-file={pki.ca}",
                f"--service-account-issuer={ISSUER}",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",  # as kubeadm sets it: Pod Security decides per namespace
                "--enable-admission-plugins=NodeRestriction",  # on top of the defaults
                "--service-cluster-ip-range=10.96.0.0/16",  # allocated only: nothing routes it
                "--endpoint-reconciler-type=none",  # a loopback address is no valid endpoint
                "--profiling=false",
                # PodTemplates (which nothing here uses) skip the watch cache, so that their
                # watches reach etcd and a compaction answers 410, as tests/cluster checks.
                "--watch-cache-sizes=podtemplates#0",
                *self.extra_apiserver,
            ],
        )
        context = self.ssl_context()
        self._wait(
            api,
            lambda: _http_ok(f"{self.url}/readyz", context),
            timeout,
            "ready apiserver (/readyz)",
        )
        self.admin_kubeconfig.write_text(kubeconfig(self.url, pki.ca, pki.admin))
        self.node_kubeconfig.write_text(kubeconfig(self.url, pki.ca, pki.node))

    def _start_controllers(self, timeout: float) -> None:
        assert self.pki is not None
        pki = self.pki
        started: list[tuple[Component, int]] = []
        for name, pair, extra in (
            (
                "kube-controller-manager",
                pki.controller_manager,
                [
                    f"--service-account-private-key-file={pki.sa_key}",
                    f"--root-ca-file={pki.ca}",
                    "--use-service-account-credentials=true",
                    "--controllers=*",
                ],
            ),
            ("kube-scheduler", pki.scheduler, []),
        ):
            config = self.workdir / f"{name}.kubeconfig"
            config.write_text(kubeconfig(self.url, pki.ca, pair))
            port = self._port()
            started.append(
                (
                    self._spawn(
                        name,
                        [
                            str(binary(name)),
                            f"--kubeconfig={config}",
                            f"--authentication-kubeconfig={config}",
                            f"--authorization-kubeconfig={config}",
                            "--bind-address=127.0.0.1",
                            f"--secure-port={port}",
                            "--leader-elect=false",
                            *extra,
                        ],
                    ),
                    port,
                )
            )
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # their serving certificates are self-signed
        for component, port in started:
            self._wait(
                component,
                functools.partial(_http_ok, f"https://127.0.0.1:{port}/healthz", insecure),
                timeout,
                "/healthz",
            )

    # --- etcd, for the compaction test --------------------------------------------------------

    def etcd(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        """A call to etcd's JSON gateway (`/v3/kv/range`, `/v3/kv/txn`, `/v3/kv/compaction`)."""
        request = urllib.request.Request(
            f"{self.etcd_url}/v3/{method}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: dict[str, Any] = json.load(response)
        return answer

    def compact(self) -> int:
        """Compact etcd at its current revision the way the apiserver does: record the revision
        under `compact_rev_key` (which the apiserver watches), then compact. Returns it."""
        key = base64.b64encode(b"compact_rev_key").decode()
        revision = int(self.etcd("kv/range", {"key": key})["header"]["revision"])
        value = base64.b64encode(str(revision).encode()).decode()
        self.etcd("kv/txn", {"success": [{"requestPut": {"key": key, "value": value}}]})
        self.etcd("kv/compaction", {"revision": str(revision), "physical": True})
        return revision


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    with (
        contextlib.suppress(OSError, urllib.error.URLError),
        urllib.request.urlopen(url, timeout=2, context=context) as response,
    ):
        return bool(response.status == 200)
    return False
