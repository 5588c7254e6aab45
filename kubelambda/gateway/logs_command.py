"""`kubelambda logs FUNCTION [--follow] [--since 10m]`: a function's lines from a dev or cluster
gateway, each prefixed with the version that wrote it. When AWS credentials are configured (the
usual environment variables or profile), the request is SigV4-signed as the AWS CLI would sign it,
so a gateway with `--auth sigv4` serves it."""

from __future__ import annotations

import argparse
import os

DEFAULT_ENDPOINT = "http://127.0.0.1:9000"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Print a function's recent log lines (START/END/REPORT and what it wrote) as the gateway "
        "buffered them; --follow keeps printing new lines as invocations write them."
    )
    parser.add_argument("function", metavar="NAME", help="e.g. hello or team-a.hello")
    parser.add_argument("--follow", "-f", action="store_true", help="keep printing new lines")
    parser.add_argument("--since", metavar="DURATION", help="only lines newer than 30s, 10m, 2h…")
    parser.add_argument(
        "--endpoint",
        default=os.environ.get("KUBELAMBDA_ENDPOINT", DEFAULT_ENDPOINT),
        help=f"gateway URL (env KUBELAMBDA_ENDPOINT; default {DEFAULT_ENDPOINT})",
    )


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    import urllib.error
    import urllib.parse
    import urllib.request

    from kubelambda.serving.logbook import parse_since

    query: dict[str, str] = {}
    if args.since:
        try:
            query["since"] = str(parse_since(args.since))
        except ValueError as exc:
            print(f"kubelambda logs: --since: {exc}", file=sys.stderr)
            return 2
    if args.follow:
        query["follow"] = "true"
    name = urllib.parse.quote(args.function)
    url = f"{args.endpoint.rstrip('/')}/kubelambda/v1/functions/{name}/logs"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(url, headers=_signed_headers(url))
    try:
        with urllib.request.urlopen(request, timeout=None if args.follow else 30) as response:
            for raw in response:
                if not raw.strip():
                    continue  # a heartbeat
                entry = json.loads(raw)
                print(f"[{entry['version']}] {entry['line']}", flush=True)
    except urllib.error.HTTPError as exc:
        code = exc.headers.get("x-amzn-ErrorType", f"HTTP {exc.code}")
        print(f"kubelambda logs: {code}: {exc.read().decode(errors='replace')}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(
            f"kubelambda logs: cannot reach {args.endpoint} ({exc.reason}); is the gateway "
            "running, or is --endpoint right?",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 0
    if args.follow:
        print(
            f"kubelambda logs: {args.endpoint} ended the stream (the gateway stopped)",
            file=sys.stderr,
        )
    return 0


def _signed_headers(url: str) -> dict[str, str]:
    """SigV4 headers for a GET of `url` from botocore's credential chain (none without any)."""
    import botocore.session
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    session = botocore.session.get_session()
    credentials = session.get_credentials()
    if credentials is None:
        return {}
    region = session.get_config_variable("region") or "us-east-1"
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(credentials, "lambda", region).add_auth(request)
    return dict(request.headers.items())
