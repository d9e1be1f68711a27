"""Small flowc projects with child flows of their own, for the lock's tests (real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENV = dict(os.environ)


def make_project(root: Path, files: dict[str, str], specs: dict[str, str], tool: str = "") -> Path:
    """pyproject.toml (with `[tool.flowc]` lines `tool`), the given files and specs/<name>.yaml."""
    (root / "specs").mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text("[tool.flowc]\n" + tool)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    for name, text in specs.items():
        (root / "specs" / f"{name}.yaml").write_text(textwrap.dedent(text))
    return root


def run(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "compiler", *args],
        cwd=cwd,
        env={**ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_flow_spec(name: str, source: str, flow_name: str = "child", alias: str | None = None) -> str:
    alias_line = f"\n    alias: {alias}" if alias else ""
    return f"""\
    name: {name}
    project_name: test
    composing_flows:
      - name: {flow_name!r}
        project_name: test{alias_line}
        source: {source!r}
    """


CHILD = """\
from prefect import Flow, Parameter, task


@task
def double(x):
    return 2 * x


with Flow("child") as flow:
    double(Parameter("x", default=1))
"""
