"""Shell completion for click (`_FLOWC_COMPLETE=bash_source flowc`): spec paths and `-p` names."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from compiler.config import find_project


def complete_specs(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Shell completion of SPEC arguments: the project's spec files, then any YAML path."""
    from click.shell_completion import CompletionItem

    try:
        project = find_project()
        names = [os.path.relpath(p) for p in project.spec_files()]
    except Exception:  # noqa: BLE001 - completion must never fail the shell
        names = []
    matches = [name for name in names if name.startswith(incomplete)]
    if matches:
        return [CompletionItem(name) for name in matches]
    return [CompletionItem(incomplete, type="file")]


def complete_params(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Shell completion of `-p`: the composite parameters of the SPEC given before it."""
    from click.shell_completion import CompletionItem

    spec = ctx.params.get("spec")
    if not spec:
        # A dangling `-p` stops click's parser before SPEC is stored; every click completion script
        # passes the whole line in COMP_WORDS.
        import shlex

        try:
            words = shlex.split(os.environ.get("COMP_WORDS", ""))
        except ValueError:
            words = []
        spec = next((w for w in words if w.endswith((".yaml", ".yml")) and Path(w).is_file()), None)
    if not spec:
        return []
    try:
        from compiler.compile import compile_plan
        from compiler.output import load_lock

        project = find_project()
        plan = compile_plan(Path(spec).read_text(encoding="utf-8"), project.relative(Path(spec)), load_lock(project))
    except Exception:  # noqa: BLE001 - completion must never fail the shell
        return []
    names = [parameter.name for step in plan.steps for parameter in step.parameters]
    return [CompletionItem(f"{name}=") for name in names if name.startswith(incomplete)]
