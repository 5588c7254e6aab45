"""Where the claim's time goes: the pod label PATCH against cheaper writes, on the real apiserver.

The real control plane of `tests/cluster` and the real operator and gateway (as `bench.cluster`
starts them) keep a warm pool; the operator is paused (SIGSTOP) while the writes are timed, so
no refill or reconcile runs beside them, and resumed afterwards. Each round times, on one
kept-alive client connection (the gateway's `KubeApi`), in rotating order:

- the claim's write, paired: a merge patch of a label with the resourceVersion precondition,
  with and without clearing managedFields, and the same as a PUT of the pod as read, each on a
  pod whose managedFields were first put back as the operator and kubelet left them (untimed);
- GET of a warm pod, and of a ConfigMap; the claim-shaped label patch on a pod and on a
  ConfigMap; on the pod a JSON patch with a `test` of metadata.resourceVersion, a merge patch
  of an annotation, the label patch answered with `PartialObjectMetadata`, the label patch on a
  pod without managedFields; the POST of a new Lease (what claiming a small object would cost).

The apiserver's own /metrics are read before and after, and the mean server-side time per
request (from the histograms' `_sum`/`_count`) is printed beside the client's p50, with the
admission steps and plugins and etcd's share. With `--pprof FILE` the apiserver runs with
profiling on and its CPU profile is taken while one pod's label is patched back to back (read it
with `go tool pprof -top -cum FILE`). Run: `.venv/bin/python -m bench.claim [--rounds N]
[--pprof FILE]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from kubernetes.config import kube_config

from bench.cluster import WARM, uptime
from kubelambda.kube.client import JSON_PATCH, KubeApi, collection
from tests.cluster.conftest import crd_documents, install_crds
from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.controlplane import REPO
from tests.cluster.lambda_stack import running_stack

SAMPLE = re.compile(r"^(?P<name>[a-z_:]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="([^"]*)"')
PROBE = "bench.kubelambda.dev/probe"
PARTIAL = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


def metrics(
    text: str, names: tuple[str, ...]
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        found = SAMPLE.match(line)
        if found is None or not found.group("name").startswith(names):
            continue
        labels = frozenset(LABEL.findall(found.group("labels") or ""))
        out[(found.group("name"), labels)] = float(found.group("value"))
    return out


async def scrape(api: KubeApi) -> str:
    async with api._client().get(api.host + "/metrics", headers=api._auth()) as response:
        return await response.text()


def delta_mean(
    before: dict[Any, float], after: dict[Any, float], base: str, **want: str
) -> tuple[float, float]:
    """(count, mean ms) of histogram `base` over the samples whose labels include `want`."""
    total = count = 0.0
    for (name, labels), value in after.items():
        if not set(want.items()) <= labels or any(k == "le" for k, _ in labels):
            continue
        if name == f"{base}_sum":
            total += value - before.get((name, labels), 0.0)
        elif name == f"{base}_count":
            count += value - before.get((name, labels), 0.0)
    return count, (total / count * 1000 if count else 0.0)


async def probe(
    api: KubeApi, ns: str, pod: str, bare: str, third: str, rounds: int
) -> dict[str, list[float]]:
    pods = collection("", "v1", "pods", ns)
    cms = collection("", "v1", "configmaps", ns)
    await api.create(cms, {"metadata": {"name": "claim-probe"}, "data": {"a": "b"}})
    pod_path, cm_path = f"{pods}/{pod}", f"{cms}/claim-probe"
    bare_path, third_path = f"{pods}/{bare}", f"{pods}/{third}"
    seen: dict[str, str] = {}
    # Strip the third pod's managedFields (a list with one empty entry clears them).
    await api.patch(third_path, {"metadata": {"managedFields": [{}]}})
    stripped = await api.get(third_path)
    print(f"stripped pod: managedFields {json.dumps(stripped['metadata'].get('managedFields'))}")

    async def get(path: str) -> None:
        seen[path] = (await api.get(path))["metadata"]["resourceVersion"]

    async def label(path: str) -> None:
        body = {"metadata": {"resourceVersion": seen[path], "labels": {PROBE: str(time.time())}}}
        seen[path] = (await api.patch(path, body))["metadata"]["resourceVersion"]

    original = (await api.get(bare_path))["metadata"]["managedFields"]

    async def restore_then_label(path: str, reset: bool) -> float:
        # Put the pod's managedFields back as the operator and kubelet left them (untimed),
        # then time the claim-shaped patch, with or without resetting them in the same write.
        restored = await api.patch(path, {"metadata": {"managedFields": original}})
        meta: dict[str, Any] = {
            "resourceVersion": restored["metadata"]["resourceVersion"],
            "labels": {PROBE: str(time.time())},
        }
        if reset:
            meta["managedFields"] = [{}]
        started = time.perf_counter()
        answer = await api.patch(path, {"metadata": meta})
        elapsed = (time.perf_counter() - started) * 1000
        assert bool(answer["metadata"].get("managedFields")) != reset
        return elapsed

    async def put_seen(path: str, reset: bool) -> float:
        # The claim as a PUT of the object as seen (its resourceVersion is the precondition),
        # labels changed: no patch to apply on the server. The object is read untimed (the
        # gateway has it from its watch).
        await api.patch(path, {"metadata": {"managedFields": original}})
        seen_object = await api.get(path)
        meta = seen_object["metadata"]
        meta.setdefault("labels", {})[PROBE] = str(time.time())
        if reset:
            meta["managedFields"] = [{}]
        started = time.perf_counter()
        answer = await api.replace(path, seen_object)
        elapsed = (time.perf_counter() - started) * 1000
        seen[path] = answer["metadata"]["resourceVersion"]
        return elapsed

    async def annotation(path: str) -> None:
        body = {"metadata": {"annotations": {PROBE: str(time.time())}}}
        seen[path] = (await api.patch(path, body))["metadata"]["resourceVersion"]

    async def metadata_only(path: str) -> None:
        # The same claim-shaped patch, answered with the pod's metadata only.
        body = {"metadata": {"resourceVersion": seen[path], "labels": {PROBE: str(time.time())}}}
        headers = {
            **api._auth(),
            "Accept": PARTIAL,
            "Content-Type": "application/merge-patch+json",
        }
        async with api._client().patch(
            api.host + path, data=json.dumps(body), headers=headers
        ) as response:
            answer = json.loads(await response.read())
            assert response.status == 200, answer
        assert answer["kind"] == "PartialObjectMetadata", answer["kind"]
        seen[path] = answer["metadata"]["resourceVersion"]

    leases = collection("coordination.k8s.io", "v1", "leases", ns)
    created = iter(range(10**9))

    async def lease() -> None:
        # What claiming by creating a small object (409 for all but the first) would cost.
        body = {
            "metadata": {"name": f"claim-probe-{next(created)}"},
            "spec": {"holderIdentity": "x"},
        }
        await api.create(leases, body)

    async def json_patch(path: str) -> None:
        ops = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": seen[path]},
            {
                "op": "add",
                "path": "/metadata/labels/" + PROBE.replace("/", "~1"),
                "value": str(time.time()),
            },
        ]
        answer = await api.patch(path, ops, content_type=JSON_PATCH)
        seen[path] = answer["metadata"]["resourceVersion"]

    steps: dict[str, Callable[[], Awaitable[float | None]]] = {
        "PATCH pod label, as claimed (managedFields kept)": lambda: restore_then_label(
            bare_path, False
        ),
        "PATCH pod label, as claimed, managedFields reset": lambda: restore_then_label(
            bare_path, True
        ),
        "PUT pod as watched, as claimed (managedFields kept)": lambda: put_seen(bare_path, False),
        "PUT pod as watched, as claimed, managedFields reset": lambda: put_seen(bare_path, True),
        "GET pod": lambda: get(pod_path),
        "GET configmap": lambda: get(cm_path),
        "PATCH pod label (merge, rv)": lambda: label(pod_path),
        "PATCH configmap label (merge, rv)": lambda: label(cm_path),
        "PATCH pod label (json patch, test rv)": lambda: json_patch(pod_path),
        "PATCH pod annotation (merge)": lambda: annotation(pod_path),
        "PATCH pod label (merge, rv), metadata answer": lambda: metadata_only(pod_path),
        "PATCH pod label, managedFields stripped": lambda: label(third_path),
        "POST a new Lease": lease,
    }
    await get(pod_path)
    await get(cm_path)
    await get(third_path)
    for step in steps.values():  # warm every path once
        await step()
    timings: dict[str, list[float]] = defaultdict(list)
    names = list(steps)
    for index in range(rounds):
        order = names[index % len(names) :] + names[: index % len(names)]
        for name in order:
            started = time.perf_counter()
            inner = await steps[name]()
            timings[name].append(inner or (time.perf_counter() - started) * 1000)
    return timings


async def profile(api: KubeApi, ns: str, pod: str, seconds: int, out: Path) -> None:
    """The apiserver's CPU profile (pprof) while the pod's label is patched back to back."""
    path = f"{collection('', 'v1', 'pods', ns)}/{pod}"
    done = asyncio.Event()

    async def patch_loop() -> int:
        count = 0
        while not done.is_set():
            rv = (await api.get(path))["metadata"]["resourceVersion"]
            # Shaped as the claim is: with the resourceVersion, clearing managedFields.
            meta = {"resourceVersion": rv, "labels": {PROBE: str(time.time())}}
            await api.patch(path, {"metadata": {**meta, "managedFields": [{}]}})
            count += 1
        return count

    loop = asyncio.create_task(patch_loop())
    url = f"{api.host}/debug/pprof/profile?seconds={seconds}"
    async with api._client().get(url, headers=api._auth()) as response:
        profiled = await response.read()
    done.set()
    await asyncio.to_thread(out.write_bytes, profiled)
    print(f"pprof: {await loop} GET+PATCH pairs in {seconds} s, profile in {out}")


async def run(ns: str, pod: str, bare: str, third: str, rounds: int, pprof: Path | None) -> None:
    api = KubeApi.from_environment()
    try:
        if pprof is not None:
            await profile(api, ns, pod, 10, pprof)
        wanted = (
            "apiserver_request_duration_seconds",
            "apiserver_admission_step_admission_duration_seconds",
            "apiserver_admission_controller_admission_duration_seconds",
            "apiserver_admission_webhook",
            "etcd_request_duration_seconds",
            "apiserver_response_sizes",
        )
        before = metrics(await scrape(api), wanted)
        pod_object = await api.get(f"{collection('', 'v1', 'pods', ns)}/{pod}")
        managed = json.dumps(pod_object["metadata"].get("managedFields", []))
        print(
            f"pod object: {len(json.dumps(pod_object))} bytes of JSON, managedFields "
            f"{len(managed)} bytes, annotations "
            f"{len(json.dumps(pod_object['metadata'].get('annotations', {})))} bytes"
        )
        timings = await probe(api, ns, pod, bare, third, rounds)
        after = metrics(await scrape(api), wanted)
    finally:
        await api.close()
    print(f"{'client, kept-alive connection':<56} {'n':>4} {'p50':>8} {'p95':>8}")
    for name, samples in timings.items():
        p95 = sorted(samples)[int(len(samples) * 0.95)]
        print(f"{name:<56} {len(samples):>4} {statistics.median(samples):>6.2f}ms {p95:>6.2f}ms")
    print("apiserver's own figures over the probe (mean ms per request, from _sum/_count):")
    base = "apiserver_request_duration_seconds"
    for verb, resource in (
        ("GET", "pods"),
        ("PATCH", "pods"),
        ("GET", "configmaps"),
        ("PATCH", "configmaps"),
        ("POST", "leases"),
    ):
        n, mean = delta_mean(before, after, base, verb=verb, resource=resource)
        print(f"  {verb} {resource}: n {n:.0f}, mean {mean:.2f} ms")
    step = "apiserver_admission_step_admission_duration_seconds"
    for kind in ("admit", "validate"):
        n, mean = delta_mean(before, after, step, operation="UPDATE", type=kind)
        print(f"  admission step {kind} (UPDATE, all kinds): n {n:.0f}, mean {mean:.3f} ms")
    controller = "apiserver_admission_controller_admission_duration_seconds"
    names = {dict(labels).get("name") for (name, labels) in after if name.startswith(controller)}
    for plugin in sorted(n for n in names if n):
        n, mean = delta_mean(before, after, controller, name=plugin, operation="UPDATE")
        if n:
            print(f"    plugin {plugin}: n {n:.0f}, mean {mean:.3f} ms")
    etcd = "etcd_request_duration_seconds"
    for name, labels in sorted(after, key=str):
        if name != f"{etcd}_count":
            continue
        info = dict(labels)
        if not any("pods" in v or "configmaps" in v for v in info.values()):
            continue
        n, mean = delta_mean(before, after, etcd, **info)
        if n:
            print(
                f"  etcd {info.get('operation')} "
                f"{next(v for v in info.values() if 'pods' in v or 'configmaps' in v)}: "
                f"n {n:.0f}, mean {mean:.2f} ms"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=200, help="rounds of every write (200)")
    parser.add_argument("--pprof", type=Path, help="also write the apiserver's CPU profile")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kubelambda-bench-") as tmp:
        cluster = Cluster(Path(tmp) / "cluster")
        if args.pprof:
            cluster.control.extra_apiserver = ("--profiling=true",)  # the last flag wins
        with cluster:
            measure(cluster, Path(tmp), args.rounds, args.pprof)


def measure(cluster: Cluster, tmp: Path, rounds: int, pprof: Path | None) -> None:
    assert cluster.client is not None
    install_crds(cluster.client, crd_documents(REPO / "crds"))
    with running_stack(cluster, tmp / "stack", warm=3) as stack:
        pods = stack.wait_pods(WARM, stack.warm)
        assert stack.operator is not None
        # The loader read KUBECONFIG when it was imported (by the harness), unset then.
        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(cluster.kubeconfig)
        print(f"load before the probe: {uptime()}")
        os.kill(stack.operator.proc.pid, signal.SIGSTOP)
        try:
            pod, bare, third = (p.metadata.name for p in pods)
            asyncio.run(run(stack.ns, pod, bare, third, rounds, pprof))
        finally:
            os.kill(stack.operator.proc.pid, signal.SIGCONT)
        print(f"load after the probe:  {uptime()}")


if __name__ == "__main__":
    main()
