"""`kubelambda invoke`: a friendly Invoke API client for a dev or cluster gateway."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_ENDPOINT = "http://127.0.0.1:9000"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Invoke a function and print its result. The payload goes to stdout; the executed "
        "version, any function error and (with --tail) the log tail go to stderr."
    )
    parser.add_argument(
        "function", metavar="NAME[:QUALIFIER]", help="e.g. hello, hello:live, team-a.hello:3"
    )
    parser.add_argument(
        "--payload", "-p", default="{}", help="a JSON document, or @FILE to read one (default {})"
    )
    parser.add_argument("--tail", action="store_true", help="print the last 4 KB of the log")
    parser.add_argument(
        "--async", dest="is_async", action="store_true", help="invoke asynchronously (Event)"
    )
    parser.add_argument(
        "--endpoint",
        default=os.environ.get("KUBELAMBDA_ENDPOINT", DEFAULT_ENDPOINT),
        help=f"gateway URL (env KUBELAMBDA_ENDPOINT; default {DEFAULT_ENDPOINT})",
    )


def run(args: argparse.Namespace) -> int:
    import base64
    import json
    import sys
    import urllib.error
    import urllib.parse
    import urllib.request

    payload: str = args.payload
    if payload.startswith("@"):
        try:
            payload = Path(payload[1:]).read_text()
        except OSError as exc:
            print(f"kubelambda invoke: cannot read {payload[1:]}: {exc}", file=sys.stderr)
            return 2
    name, _, qualifier = args.function.partition(":")
    url = f"{args.endpoint.rstrip('/')}/2015-03-31/functions/{urllib.parse.quote(name)}/invocations"
    if qualifier:
        url += f"?Qualifier={urllib.parse.quote(qualifier)}"
    headers = {"Content-Type": "application/json"}
    headers["X-Amz-Invocation-Type"] = "Event" if args.is_async else "RequestResponse"
    if args.tail:
        headers["X-Amz-Log-Type"] = "Tail"
    request = urllib.request.Request(url, data=payload.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=960) as response:
            body = response.read()
            status = response.status
            meta = response.headers
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        code = exc.headers.get("x-amzn-ErrorType", f"HTTP {exc.code}")
        print(f"kubelambda invoke: {code}: {detail}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(
            f"kubelambda invoke: cannot reach {args.endpoint} ({exc.reason}); is `kubelambda dev` "
            "running, or is --endpoint right?",
            file=sys.stderr,
        )
        return 1
    if args.is_async:
        print(
            f"accepted ({status}), request id {meta.get('x-amzn-RequestId', '?')}", file=sys.stderr
        )
        return 0
    try:
        print(json.dumps(json.loads(body), indent=2))
    except ValueError:
        sys.stdout.write(body.decode(errors="replace") + "\n")
    print(f"executed version: {meta.get('X-Amz-Executed-Version', '?')}", file=sys.stderr)
    if args.tail and meta.get("X-Amz-Log-Result"):
        print(base64.b64decode(meta["X-Amz-Log-Result"]).decode(errors="replace"), file=sys.stderr)
    if meta.get("X-Amz-Function-Error"):
        print(f"function error: {meta['X-Amz-Function-Error']}", file=sys.stderr)
        return 1
    return 0
