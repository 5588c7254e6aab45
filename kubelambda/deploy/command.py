"""`kubelambda deploy DIR`: package every `code.path`, upload it, apply the manifests, wait.

Against a cluster (the current kubeconfig context, or in-cluster credentials) zips go to the
code store named by the --code-store-* flags (or the KUBELAMBDA_CODE_STORE_* variables) and
each manifest is applied with `code.s3` + `sha256` in place of `code.path`. With
--endpoint-url, the same folder goes to a gateway (`kubelambda dev`, or a cluster's) through
the Lambda control API. Progress is one line per step and function.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

DESCRIPTION = __doc__.split("\n\n", 1)[1] if __doc__ else ""
KINDS_IN_ORDER = ("Function", "Version", "Alias", "EventSourceMapping")


def add_target_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="a gateway's URL: go through the Lambda control API (default: the cluster of the "
        "current kubeconfig context)",
    )
    parser.add_argument("--namespace", default="default", help="namespace for unqualified names")
    parser.add_argument("--region", default="us-east-1", help="region in ARNs (us-east-1)")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("folder", metavar="DIR", type=Path, help="folder of manifests and code")
    add_target_flags(parser)
    env = os.environ.get
    store = parser.add_argument_group("code store (cluster target; keys from AWS_* variables)")
    store.add_argument("--code-store-bucket", default=env("KUBELAMBDA_CODE_STORE_BUCKET"))
    store.add_argument("--code-store-endpoint", default=env("KUBELAMBDA_CODE_STORE_ENDPOINT"))
    store.add_argument(
        "--code-store-region", default=env("KUBELAMBDA_CODE_STORE_REGION", "us-east-1")
    )
    store.add_argument(
        "--code-store-secret",
        default=env("KUBELAMBDA_CODE_STORE_SECRET"),
        help="the Secret (in the functions' namespace) agents read the store's keys from",
    )
    parser.add_argument("--no-wait", action="store_true", help="do not wait for Active")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (300)")


def run(args: argparse.Namespace) -> int:
    from kubelambda.api.resources import ManifestError
    from kubelambda.loop import run_loop

    folder: Path = args.folder
    if not folder.is_dir():
        print(f"kubelambda deploy: {folder} is not a folder", file=sys.stderr)
        return 2
    try:
        docs = read_folder(folder)
    except ManifestError as exc:
        print("kubelambda deploy: the manifests are invalid:", file=sys.stderr)
        for line in exc.problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    return run_loop(deploy(args, docs))


def read_folder(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every kubelambda manifest in the folder, as written; raises ManifestError with every
    problem at once, before anything is shipped."""
    from kubelambda.api.manifests import read_paths
    from kubelambda.api.resources import is_kubelambda_manifest, iter_documents

    read_paths([folder]).raise_problems()
    docs: list[tuple[Path, dict[str, Any]]] = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml")):
        if ".kubelambda" in path.parts:
            continue
        docs += [(path, doc) for _, doc in iter_documents(path) if is_kubelambda_manifest(doc)]
    return docs


async def deploy(args: argparse.Namespace, docs: list[tuple[Path, dict[str, Any]]]) -> int:
    import asyncio
    import tempfile

    from kubelambda.deploy.package import code_paths, package, with_code, zip_inline
    from kubelambda.deploy.publish import wait_active
    from kubelambda.deploy.targets import DeployError
    from kubelambda.serving.errors import LambdaError

    def say(line: str) -> None:
        print(line, flush=True)

    folder: Path = args.folder
    target, closer = await _target(args)
    failed = 0
    try:
        with tempfile.TemporaryDirectory(prefix="kubelambda-deploy-") as scratch:
            ready: list[tuple[str, dict[str, Any], dict[str, bytes]]] = []
            for path, doc in docs:
                name = f"{doc['kind']}/{(doc.get('metadata') or {}).get('name')}"
                replacements: dict[str, dict[str, Any]] = {}
                zips: dict[str, bytes] = {}
                try:
                    for where, source in code_paths(doc):
                        pkg = await asyncio.to_thread(package, path.parent / source, Path(scratch))
                        code, location, size = await target.upload(pkg)
                        if "zip" in code:
                            zips[where] = code["zip"]
                        else:
                            replacements[where] = code
                        say(
                            f"{name}: {where.removeprefix('spec.')} {source}: {pkg.files} "
                            f"file(s), {size} bytes -> {location}"
                        )
                except (DeployError, ValueError) as exc:
                    say(f"{name}: FAILED: {exc}")
                    failed += 1
                    continue
                inline = ((doc.get("spec") or {}).get("code") or {}).get("inline")
                if inline and doc["kind"] == "Function":
                    zips["spec.code"] = zip_inline(inline)
                ready.append((name, with_code(doc, replacements), zips))
            applied: list[dict[str, Any]] = []
            for kind in KINDS_IN_ORDER:
                for name, doc, zips in ready:
                    if doc["kind"] != kind:
                        continue
                    try:
                        say(f"{name}: {await target.apply(doc, zips)}")
                        applied.append(doc)
                    except DeployError as exc:
                        say(f"{name}: FAILED: {exc}")
                        failed += 1
        if not args.no_wait:
            for doc in applied:
                if doc["kind"] != "Function":
                    continue
                meta = doc.get("metadata") or {}
                name = f"Function/{meta.get('name')}"
                function = f"{meta.get('namespace') or args.namespace}.{meta.get('name')}"
                try:
                    config = await wait_active(target.call, function, None, args.timeout)
                except LambdaError as exc:
                    say(f"{name}: {exc.code}: {exc.message}")
                    failed += 1
                    continue
                state = config.get("State")
                reason = f" ({config.get('StateReason')})" if state != "Active" else ""
                say(f"{name}: {state}{reason}")
                failed += state != "Active"
    finally:
        await closer()
    say(
        f"deployed {len(docs)} manifest(s) from {folder}" + (f"; {failed} failed" if failed else "")
    )
    return 1 if failed else 0


async def _target(args: argparse.Namespace) -> tuple[Any, Callable[[], Awaitable[None]]]:
    """The deploy target the flags name, and how to release it."""
    from kubelambda.deploy.targets import ClusterTarget, GatewayTarget

    if args.endpoint_url:
        return GatewayTarget(lambda_client(args.endpoint_url, args.region)), _nothing
    from kubelambda.kube.client import KubeApi
    from kubelambda.runtime.s3 import S3Endpoint
    from kubelambda.serving.codestore import CodeBucket, NoCodeStore, S3CodeStore
    from kubelambda.serving.control.store import CodeStore

    api = KubeApi.from_environment()
    code: CodeStore = NoCodeStore()
    if args.code_store_bucket:
        where = S3Endpoint(
            args.code_store_endpoint,
            args.code_store_region,
            os.environ.get("AWS_ACCESS_KEY_ID"),
            os.environ.get("AWS_SECRET_ACCESS_KEY"),
        )
        code = S3CodeStore(CodeBucket(args.code_store_bucket, where, args.code_store_secret))
    return ClusterTarget(api, code, args.region, args.namespace), api.close


async def _nothing() -> None:
    return None


def lambda_client(url: str, region: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "lambda",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "kubelambda"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "kubelambda"),
        config=Config(retries={"total_max_attempts": 2}, read_timeout=300),
    )
