"""Shared test helpers: copies of this repository's flowc project in temporary directories."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SPECS = sorted(p for p in (REPO / "specs").glob("*.yaml") if p.name != "flows.lock.yaml")
# The specs compiled for Prefect 1 (the others say `target: prefect3`).
PREFECT1_SPECS = [p for p in SPECS if "\ntarget: prefect3\n" not in p.read_text()]


def copy_project(target: Path, *, generated: bool = True, examples: bool = False) -> Path:
    """pyproject.toml, specs/ (with the lock) and optionally generated/ and examples/, under target."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "pyproject.toml", target / "pyproject.toml")
    shutil.copytree(REPO / "specs", target / "specs")
    if generated:
        shutil.copytree(REPO / "generated", target / "generated")
    if examples:
        shutil.copytree(REPO / "examples", target / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    return target


def flowc(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "compiler", *args], capture_output=True, text=True, cwd=cwd, env=env
    )


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
