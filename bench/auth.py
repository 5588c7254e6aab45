"""What invoke auth costs on the warm path (`python -m bench.auth`).

- **end to end**: two `kubelambda dev` processes, one with `--auth none` and one with
  `--auth sigv4 --keys FILE`, each a no-op function; the same number of sequential calls on one
  keep-alive connection, in rounds whose order alternates (ABBA), so that both see the same
  machine; the difference is given both as the difference of the p50s and as the median of the
  rounds' own differences. Each round's request is signed by botocore before the round (so the
  client's signing time is not in the figure, and no round outlives the five-minute window)
  and both gateways get the same bytes. Resending one signed request measures the whole check:
  the guard caches no verdict and nothing keyed by the Authorization header. The gateway
  process's CPU time per call is measured too: it moves far less than latency when other work
  shares the cores.
- **in process**: the guard's whole check of that request (`Guard._admit` on an aiohttp
  request routed by the gateway's own application: header checks, key, signature, key rules),
  hot (back to back) and with 1 MiB of memory written between two checks, as the rest of a
  request does in a live gateway (the hot figure is what the check costs at best, the evicted
  one is closer to what it costs in the server),
  `sigv4.verify` alone, and a decision answered from the cache (`AccessReviews` on a hit: the
  cluster's SubjectAccessReview path, without the API server).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bench.gateway import Gateway
from kubelambda.gateway.auth import sigv4
from kubelambda.gateway.auth.kubernetes import AccessReviews
from kubelambda.gateway.auth.model import Identity

KEY, SECRET = "AKIABENCHMARK0000001", "bench-secret-key-0123456789"
KEYS = f"keys:\n  - {{accessKeyId: {KEY}, secretAccessKey: {SECRET}, user: bench}}\n"


class DevGateway(Gateway):
    """`bench.gateway.Gateway` with auth flags; "KEYS" in them names a keys file of `KEYS`."""

    def __init__(self, *args: str) -> None:
        keys = Path(tempfile.mkdtemp(prefix="bench-auth-keys-")) / "keys.yaml"
        keys.write_text(KEYS)
        super().__init__(*(a.replace("KEYS", str(keys)) for a in args), prefix="bench-auth-")

    def cpu(self) -> float:
        """CPU seconds the gateway process has used (its runtimes are children: not counted)."""
        times = psutil.Process(self.proc.pid).cpu_times()
        return float(times.user + times.system)


def signed_headers(url: str) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=b"{}")
    SigV4Auth(Credentials(KEY, SECRET), "lambda", "us-east-1").add_auth(request)
    return dict(request.headers.items())


async def calls(url: str, headers: dict[str, str], count: int) -> list[float]:
    samples: list[float] = []
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            start = time.perf_counter()
            async with session.post(url, data=b"{}", headers=headers) as response:
                await response.read()
                assert response.status == 200, await response.text()
            samples.append(time.perf_counter() - start)
    return samples


def in_process(count: int, url: str) -> tuple[float, float]:
    headers = signed_headers(url)
    path = url.split("//", 1)[1]
    host, _, raw_path = path.partition("/")
    request = sigv4.SignedRequest(
        "POST", "/" + raw_path, "", [("Host", host), *headers.items()], b"{}"
    )

    def secret_of(key: str) -> str | None:
        return SECRET if key == KEY else None

    verify: list[float] = []
    for _ in range(count):
        start = time.perf_counter()
        sigv4.verify(request, secret_of)
        verify.append(time.perf_counter() - start)
    reviews = AccessReviews(api=None)  # type: ignore[arg-type]  # a hit never reaches the API
    who = Identity("bench", ("team",), KEY)
    reviews.cache.put((who.user, who.groups, "invoke", "default", "noop"), True)
    decide: list[float] = []

    async def decisions() -> None:
        for _ in range(count):
            start = time.perf_counter()
            await reviews.allowed(who, "invoke", "default", "noop")
            decide.append(time.perf_counter() - start)

    asyncio.run(decisions())
    assert reviews.asked == 0
    return statistics.median(verify) * 1000, statistics.median(decide) * 1000


def guard_check(count: int, url: str, evict_kib: int = 0) -> float:
    """The p50, in ms, of the guard's decision on the signed Invoke (the body already read);
    `evict_kib`: that much memory is written between two checks, evicting the CPU caches."""
    from typing import cast

    from aiohttp.test_utils import make_mocked_request

    from kubelambda.gateway.api import GatewayApi
    from kubelambda.gateway.auth.guard import Guard, KeyRules, StaticKeys
    from kubelambda.gateway.auth.keys import parse_keys
    from kubelambda.gateway.http import _BODY
    from kubelambda.gateway.invoker import Invoker
    from kubelambda.gateway.pool import EnvironmentPool, PoolSettings

    keys = StaticKeys(parse_keys(KEYS).by_id())
    guard = Guard(
        frozenset({"sigv4"}),
        KeyRules(keys),
        keys=keys,
        region="us-east-1",
        default_namespace="default",
    )
    pool = EnvironmentPool(cast(Any, None), PoolSettings())  # routing only: never started
    app = GatewayApi(Invoker(pool), guard=guard).app()
    host = url.split("//", 1)[1].split("/", 1)[0]
    headers = {"Host": host, "Content-Length": "2", **signed_headers(url)}
    path = "/2015-03-31/functions/noop/invocations"

    async def run() -> list[float]:
        # The requests are built first: aiohttp's mocked requests are heavy, and building one
        # between two timings would put its garbage into the next.
        requests = []
        for _ in range(count):
            request = make_mocked_request("POST", path, headers=headers, app=app)
            request._match_info = await app.router.resolve(request)  # as aiohttp's handler does
            request[_BODY] = b"{}"
            requests.append(request)
        canonical = requests[0].match_info.route.resource.canonical  # type: ignore[union-attr]
        samples = []
        junk = bytearray(evict_kib * 1024)
        zeros = bytes(len(junk[::64]))  # one byte per cache line
        for request in requests:
            if evict_kib:
                junk[::64] = zeros
            start = time.perf_counter()
            await guard._admit(request, canonical)
            samples.append(time.perf_counter() - start)
        return samples

    return statistics.median(asyncio.run(run())) * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300, help="calls per round (300)")
    parser.add_argument("--rounds", type=int, default=12, help="rounds, order alternating (12)")
    args = parser.parse_args(argv)
    open_gw, signed_gw = DevGateway(), DevGateway("--auth", "sigv4", "--keys", "KEYS")
    try:
        # Both get the same signed headers: the `none` gateway ignores them, so the difference
        # is the checking alone, not the bytes of two more headers.
        headers = signed_headers(signed_gw.url)
        asyncio.run(calls(open_gw.url, headers, 50))  # warm-up: both environments exist
        asyncio.run(calls(signed_gw.url, headers, 50))
        plain: list[float] = []
        authed: list[float] = []
        per_round: list[float] = []
        cpu = {id(open_gw): 0.0, id(signed_gw): 0.0}
        pair = ((open_gw, plain), (signed_gw, authed))
        for number in range(args.rounds):
            headers = signed_headers(signed_gw.url)  # fresh: a round never outlives the window
            p50s: dict[int, float] = {}
            for gateway, out in pair if number % 4 in (0, 3) else pair[::-1]:  # ABBA
                before = gateway.cpu()
                samples = asyncio.run(calls(gateway.url, headers, args.calls))
                cpu[id(gateway)] += gateway.cpu() - before
                out += samples
                p50s[id(gateway)] = statistics.median(samples)
            per_round.append(p50s[id(signed_gw)] - p50s[id(open_gw)])
        verify_ms, decide_ms = in_process(5000, signed_gw.url)
        guard_ms = guard_check(3000, signed_gw.url)
        evicted_ms = guard_check(1000, signed_gw.url, evict_kib=1024)
    finally:
        open_gw.stop()
        signed_gw.stop()
    total = args.rounds * args.calls
    cpu_plain, cpu_auth = (cpu[id(g)] / total * 1000 for g in (open_gw, signed_gw))
    p50_plain = statistics.median(plain) * 1000
    p50_auth = statistics.median(authed) * 1000
    by_round = statistics.median(per_round) * 1000
    rows: list[tuple[str, Any]] = [
        ("warm p50, --auth none", f"{p50_plain:.3f} ms"),
        ("warm p50, --auth sigv4 (decision from the keys)", f"{p50_auth:.3f} ms"),
        ("auth's share of the warm p50", f"{p50_auth - p50_plain:+.3f} ms"),
        ("  median of the rounds' own differences", f"{by_round:+.3f} ms"),
        ("gateway CPU per call, --auth none", f"{cpu_plain:.3f} ms"),
        ("gateway CPU per call, --auth sigv4", f"{cpu_auth:.3f} ms"),
        ("auth's share of the gateway's CPU per call", f"{cpu_auth - cpu_plain:+.3f} ms"),
        ("in process: the guard's whole check (Guard._admit)", f"{guard_ms:.3f} ms"),
        ("  the same, 1 MiB written between two checks", f"{evicted_ms:.3f} ms"),
        ("in process: sigv4.verify", f"{verify_ms:.3f} ms"),
        ("in process: a cached SubjectAccessReview decision", f"{decide_ms:.4f} ms"),
    ]
    for name, value in rows:
        print(f"{name:<52} {value}")


if __name__ == "__main__":
    main()
