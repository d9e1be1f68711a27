"""`flowc init [DIR]`: a new project that works at once, written only where nothing exists yet.

The files are the README's "Your first pipeline": a pyproject.toml with [tool.flowc], a package
with two small child flows whose results are mappable (PrefectResult, checkpointed), a spec that
composes them, .gitignore and .pre-commit-config.yaml. The lock is then captured by `flowc lock`'s
own code, not written here, so it is exactly what `flowc lock` would write.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PYPROJECT = """\
[project]
name = "{dist_name}"
version = "0.1.0"
description = "Flows of flows compiled by flowc"
requires-python = ">=3.10"

[tool.flowc]
specs = "specs"
generated = "generated"
lock = "specs/flows.lock.yaml"
"""

PRODUCE = '''\
"""produce: the first child flow. Its task `double` returns a result other flow runs can load."""

from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult


# PrefectResult + checkpoint=True: the value is stored where another flow run can read it, so a
# spec may map it into another flow's parameter (docs/lock.md, "What makes a result mappable").
@task(result=PrefectResult(), checkpoint=True)
def double(x: float) -> float:
    return 2 * x


with Flow("produce") as flow:
    x = Parameter("x", default=1.0)
    double(x)
'''

CONSUME = '''\
"""consume: the second child flow; its parameter `y` is fed from produce's `double`."""

from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult


@task(result=PrefectResult(), checkpoint=True)
def report(y: float, label: str) -> str:
    return f"{{label}}: {{y}}"


with Flow("consume") as flow:
    y = Parameter("y", required=True)
    label = Parameter("label", default="result")
    report(y, label)
'''

SPEC = """\
# yaml-language-server: $schema=./flowc.schema.json
# A flow of flows: `consume` runs after `produce`, with produce's `double` result as its `y`.
# Every key: docs/spec.md in flowc's repository. After editing: `flowc lock` (when a child flow
# changed), then `flowc generate`; `flowc run specs/{name}.yaml` runs it here.
name: {name}
project_name: {name}
composing_flows:
  - name: produce
    project_name: {name}
    source: {package}.produce:flow
  - name: consume
    project_name: {name}
    source: {package}.consume:flow
    mapped_parameters:
      y: {{parent_flow_name: produce, parent_task_name: double}}
"""

GITIGNORE = """\
# flowc's local state: the results store, files and run records of `flowc run`.
.flowc/
__pycache__/
"""

PRECOMMIT = """\
# `pre-commit install` once: each commit then regenerates generated/ (failing when a file changed,
# so you add it) and checks that the lock still matches the child flows. `language: system` runs
# the flowc of your environment; flowc's repository also publishes these hooks (flowc-generate,
# flowc-check) for `repo: <flowc's URL>` with `rev:` pinned.
repos:
  - repo: local
    hooks:
      - id: flowc-generate
        name: flowc generate
        entry: flowc generate --fail-on-change
        language: system
        pass_filenames: false
        require_serial: true
        files: ^(specs/|generated/)|(^|/)pyproject\\.toml$
      - id: flowc-check
        name: flowc check
        entry: flowc check
        language: system
        pass_filenames: false
        require_serial: true
        files: ^(specs/|generated/|{package}/)|(^|/)pyproject\\.toml$
"""


@dataclass(frozen=True)
class Scaffold:
    root: Path
    name: str  # the spec's name, the Prefect project, and the package
    files: dict[str, str]  # relative path -> text

    @property
    def spec_path(self) -> str:
        return f"specs/{self.name}.yaml"


def project_name_for(directory: Path) -> str:
    """A safe identifier from the directory's name: `my-pipeline` -> `my_pipeline`."""
    words = re.sub(r"[^A-Za-z0-9]+", "_", directory.resolve().name).strip("_").lower()
    if not words or not words[0].isalpha():
        words = f"flows_{words}".rstrip("_")
    return words[:60]


def scaffold(root: Path) -> Scaffold:
    """What `flowc init` writes into `root` (the JSON Schema too, for editors: `flowc schema`)."""
    import json

    from compiler.spec import spec_json_schema

    schema = json.dumps(spec_json_schema(), indent=2, sort_keys=True) + "\n"
    name = project_name_for(root)
    # Not the bare name: the project root comes first on sys.path, where `json/` would shadow json.
    package = f"{name}_flows"
    files = {
        "pyproject.toml": PYPROJECT.format(dist_name=name.replace("_", "-")),
        f"{package}/__init__.py": f'"""The child flows that specs/{name}.yaml composes."""\n',
        f"{package}/produce.py": PRODUCE,
        f"{package}/consume.py": CONSUME.format(),
        f"specs/{name}.yaml": SPEC.format(name=name, package=package),
        "specs/flowc.schema.json": schema,
        ".gitignore": GITIGNORE,
        ".pre-commit-config.yaml": PRECOMMIT.format(package=package),
    }
    return Scaffold(root, name, files)


def existing(plan: Scaffold, lock_path: str) -> list[str]:
    """The files init would write that exist already (it writes none of them then)."""
    return [p for p in [*plan.files, lock_path] if (plan.root / p).exists() or (plan.root / p).is_symlink()]


def write(plan: Scaffold) -> list[Path]:
    """Write the files (never over an existing one); returns what was created, directories too."""
    created: list[Path] = []
    for relative, text in plan.files.items():
        target = plan.root / relative
        for directory in reversed([target.parent, *target.parent.parents]):
            if not directory.exists():
                directory.mkdir()
                created.append(directory)
        with target.open("x", encoding="utf-8", newline="\n") as stream:  # "x": never overwrite
            stream.write(text)
        created.append(target)
    return created


def remove(created: list[Path]) -> None:
    """Undo write(): a failed init leaves nothing behind."""
    for path in reversed(created):
        if path.is_dir():
            if not any(path.iterdir()):
                path.rmdir()
        else:
            path.unlink(missing_ok=True)


LOCK_PATH = "specs/flows.lock.yaml"


def init_project(root: Path, capture_lock: Callable[[], int]) -> int:
    """`flowc init`: check, write, lock (`capture_lock` runs `flowc lock` in the new root); the exit code."""
    import click

    from compiler import console

    if root.exists() and not root.is_dir():
        raise click.UsageError(f"{root} is not a directory")
    plan = scaffold(root)
    taken = existing(plan, LOCK_PATH)
    if taken:
        console.error(
            f"error: {root}: {', '.join(taken)} exist{'s' if len(taken) == 1 else ''} already; "
            "flowc init never overwrites a file, so nothing was written"
        )
        return 1
    made_root = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    created = write(plan)
    previous = Path.cwd()
    os.chdir(root)
    try:
        code = capture_lock()
    finally:
        os.chdir(previous)
    if code:
        remove(created + ([root] if made_root else []))
        console.error("error: the child flows' lock could not be captured (above); nothing was left behind")
        return 1
    where = "" if root.resolve() == previous.resolve() else f"cd {shlex.quote(str(root))} && "
    tops = sorted({path.split("/")[0] + ("/" if "/" in path else "") for path in plan.files})
    console.info(f"created a flowc project in {root}: {', '.join(tops)} ({LOCK_PATH} captured by `flowc lock`)")
    console.info("next:")
    console.info(f"  {where}flowc generate && flowc run {plan.spec_path}")
    console.info("  git init && pre-commit install    # the hooks regenerate and check on every commit")
    return 0
