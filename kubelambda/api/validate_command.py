"""`kubelambda validate`: check manifests against the models, reporting every problem at once."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="+", type=Path, help="manifest files or folders (searched recursively)"
    )


def run(args: argparse.Namespace) -> int:
    from kubelambda.api.resources import (
        ManifestError,
        is_kubelambda_manifest,
        iter_documents,
        load_manifests,
        parse_resource,
    )

    problems: list[str] = []
    count = 0
    for path in args.paths:
        try:
            if path.is_dir():
                count += len(load_manifests(path))
            elif path.is_file():
                for where, doc in iter_documents(path):
                    if is_kubelambda_manifest(doc):
                        parse_resource(doc, where=where)
                        count += 1
            else:
                problems.append(f"{path}: no such file or folder")
        except ManifestError as exc:
            problems.extend(exc.problems)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    print(f"{count} kubelambda object(s) valid")
    return 0
