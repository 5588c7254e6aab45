"""`kubelambda validate`: check manifests as dev mode and the operator would, reporting everything.

Each document is checked against its model, then the set across resources (`api.checks`), so
what validate passes is what `kubelambda dev` serves. Every bad document of every file is
reported, each line naming the file, the document, the kind/name, the field and what is allowed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="+", type=Path, help="manifest files or folders (searched recursively)"
    )


def run(args: argparse.Namespace) -> int:
    from kubelambda.api.checks import check_set
    from kubelambda.api.manifests import read_paths

    reading = read_paths(args.paths)
    problems = reading.problems + [p.line for p in check_set(reading.documents)]
    for note in reading.notes:
        print(note)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        bad = len(problems)
        print(f"{bad} problem(s) found; {len(reading.documents)} object(s) read", file=sys.stderr)
        return 1
    if not reading.documents:
        print("no kubelambda.dev objects found", file=sys.stderr)
        return 1
    print(f"{len(reading.documents)} kubelambda object(s) valid")
    return 0
