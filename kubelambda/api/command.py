"""`kubelambda crds`: write (or check) the CRDs generated from the models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output", "-o", type=Path, default=Path("crds"), help="folder to write (default: crds/)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the folder differs from what the models generate",
    )
    parser.add_argument(
        "--stdout", action="store_true", help="print all CRDs as one YAML stream instead"
    )
    parser.add_argument(
        "--docs", type=Path, metavar="FILE", help="also write the resource reference (Markdown)"
    )


def run(args: argparse.Namespace) -> int:
    from kubelambda.api.crdgen import render_all
    from kubelambda.api.docgen import render as render_docs

    rendered = render_all()
    if args.stdout:
        sys.stdout.write("---\n".join(rendered.values()))
        return 0
    out: Path = args.output
    stale = [
        n
        for n, text in rendered.items()
        if not (out / n).is_file() or (out / n).read_text() != text
    ]
    if args.check:
        for name in stale:
            print(f"{out / name}: differs from the models; run `kubelambda crds`", file=sys.stderr)
        return 1 if stale else 0
    if args.docs is not None:
        args.docs.write_text(render_docs())
        print(f"wrote {args.docs}")
    out.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (out / name).write_text(text)
        print(f"{'wrote' if name in stale else 'unchanged'} {out / name}")
    return 0
