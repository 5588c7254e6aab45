"""Every committed Markdown file stays readable in size (a corrupted edit once made one 8.8 MB)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LIMIT = 100 * 1024


def committed_markdown() -> list[Path]:
    """The Markdown files git tracks; outside a git checkout, every .md under the repository."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--", "*.md"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        skip = {".venv", ".tools", ".git", "node_modules", ".mypy_cache", ".pytest_cache"}
        return [p for p in REPO.rglob("*.md") if not skip & set(p.relative_to(REPO).parts)]
    return [REPO / name for name in listed.decode().split("\0") if name]


def test_there_is_markdown_to_check() -> None:
    names = {p.relative_to(REPO).as_posix() for p in committed_markdown()}
    assert {"README.md", "bench/README.md", "docs/architecture.md"} <= names


def test_no_markdown_file_is_over_100_kb() -> None:
    sizes = {p.relative_to(REPO).as_posix(): p.stat().st_size for p in committed_markdown()}
    too_big = {name: size for name, size in sizes.items() if size > LIMIT}
    assert not too_big, f"Markdown files over {LIMIT} bytes: {too_big}"


def test_compatibility_says_plainly_that_dev_mode_does_not_isolate_functions() -> None:
    """Issue 12, defect 10: a function can race another's Runtime API in dev mode; the docs
    must say so (a secret in AWS_LAMBDA_RUNTIME_API breaks the unmodified awslambdaric)."""
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "compatibility.md").read_text()
    assert "**Dev mode does not isolate functions from each other.**" in text
