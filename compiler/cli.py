"""The `flowc` command line: argument parsing and printing only; the stages do the work."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from compiler import __version__
from compiler.config import Project, find_project
from compiler.diagnostics import CompileError, Diagnostic, format_diagnostics

FORMATS = click.Choice(["text", "json", "github"])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flowc")
def main() -> None:
    """Compile LUME flow-of-flows specs into ordinary Prefect 1 projects."""


def _project() -> Project:
    return find_project()


def _spec_paths(project: Project, specs: tuple[str, ...]) -> list[Path] | None:
    if not specs:
        return None
    paths = []
    for spec in specs:
        path = Path(spec)
        if not path.is_file():
            raise click.UsageError(f"no such spec file: {spec}")
        paths.append(path)
    return paths


def _fail(diagnostics: list[Diagnostic], style: str) -> None:
    # json and github output are for machines and go to stdout; text is for people, on stderr.
    click.echo(format_diagnostics(diagnostics, style), err=style == "text")
    count = len(set(diagnostics))
    if style == "text":
        click.echo(f"{count} error{'s' if count != 1 else ''}; nothing was written", err=True)
    sys.exit(1)


@main.command()
@click.argument("specs", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--format", "style", type=FORMATS, default="text", help="How to print diagnostics.")
@click.option("--watch", is_flag=True, help="Regenerate whenever specs, the lock or templates change.")
@click.option(
    "--fail-on-change",
    is_flag=True,
    help="Exit 1 when a file was written or removed (for pre-commit: new files count too).",
)
def generate(specs: tuple[str, ...], style: str, watch: bool, fail_on_change: bool) -> None:
    """Compile specs (default: every specs/*.yaml) into generated/; writes only what changed."""
    project = _project()
    if watch:
        from compiler.watch import watch_and_generate

        watch_and_generate(project, _spec_paths(project, specs), style)
        return
    code = run_generate(project, _spec_paths(project, specs), style, fail_on_change=fail_on_change)
    sys.exit(code)


def run_generate(
    project: Project, spec_paths: list[Path] | None, style: str, quiet: bool = False, fail_on_change: bool = False
) -> int:
    """One generate pass; returns the exit code. Shared by `generate` and `build`."""
    from filelock import FileLock

    from compiler.output import build_tree, load_lock, write_tree

    try:
        lock = load_lock(project)
    except CompileError as error:
        _fail(error.diagnostics, style)
    state = project.root / ".flowc"
    state.mkdir(exist_ok=True)
    with FileLock(str(state / "generate.lock")):
        tree = build_tree(project, spec_paths, lock)
        if tree.diagnostics:
            _fail(tree.diagnostics, style)
        try:
            report = write_tree(project, tree)
        except OSError as error:  # disk full, permissions: write_tree has put everything back
            unchanged = project.relative(project.generated_dir)
            click.echo(f"error: cannot write generated files: {error}; {unchanged}/ is unchanged", err=True)
            sys.exit(1)
    if not quiet:
        for path in report.written:
            edited = " (overwrote a hand edit: change the spec instead)" if path in report.hand_edited else ""
            click.echo(f"wrote {path}{edited}")
        for path in report.removed:
            click.echo(f"removed {path}")
        click.echo(
            f"{tree.specs} spec{'s' if tree.specs != 1 else ''}: {len(report.written)} file(s) written, "
            f"{report.unchanged} unchanged, {len(report.removed)} removed"
        )
    return 1 if fail_on_change and (report.written or report.removed) else 0


@main.command()
@click.argument("specs", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--format", "style", type=FORMATS, default="text", help="How to print diagnostics.")
def check(specs: tuple[str, ...], style: str) -> None:
    """Write nothing; print a diff for every stale, missing or orphaned file and a drifted lock."""
    from compiler.lock import drifted, ensure_importable, render_lock
    from compiler.output import build_tree, load_lock, stale_files, unified_diff

    project = _project()
    try:
        lock = load_lock(project)
    except CompileError as error:
        _fail(error.diagnostics, style)
    tree = build_tree(project, _spec_paths(project, specs), lock)
    if tree.diagnostics:
        _fail(tree.diagnostics, style)
    stale = stale_files(project, tree)
    diffs = [item.diff() for item in stale]
    problems = [item.diagnostic() for item in stale]
    ensure_importable(project.root)
    drift = drifted(lock)
    lock_display = project.relative(project.lock_path)
    lock_text = project.lock_path.read_text(encoding="utf-8") if project.lock_path.exists() else ""
    for key, changes in sorted(drift.changes.items()):
        message = f"{key} no longer matches its source {lock.flows[key].source}: {'; '.join(changes)}; run `flowc lock`"
        problems.append(Diagnostic(lock_display, _lock_line(lock_text, key), 1, message))
    for key, error in sorted(drift.failed.items()):
        problems.append(Diagnostic(lock_display, _lock_line(lock_text, key), 1, error))
    if drift.lock is not None:
        diffs.append(unified_diff(lock_display, lock_text, render_lock(drift.lock.flows.values())))
    if style == "json":
        click.echo(format_diagnostics(problems, "json"))
    else:
        for note in drift.notes:
            click.echo(f"note: {note}", err=True)
        if diffs:
            click.echo("".join(diffs), nl=False)
        if problems:
            click.echo(format_diagnostics(problems, style), err=style == "text")
    if problems:
        if style == "text":
            click.echo(
                f"{len(problems)} problem(s): run `flowc generate` for generated files, `flowc lock` for the lock",
                err=True,
            )
        sys.exit(1)
    if style == "text":
        click.echo(f"{tree.specs} spec(s) up to date", err=True)


def _lock_line(lock_text: str, key: str) -> int:
    """The line of a flow's entry in the lock, so annotations land on it."""
    for number, line in enumerate(lock_text.splitlines(), start=1):
        if line.strip() in (f"{key}:", f"'{key}':", f'"{key}":'):
            return number
    return 1


@main.command()
def lock() -> None:
    """(Re)write the lock from each composing flow's source (or the Prefect backend)."""
    from compiler.lock import Wanted, ensure_importable, relock, render_lock
    from compiler.output import load_lock
    from compiler.spec import parse_spec

    project = _project()
    ensure_importable(project.root)
    problems: list[Diagnostic] = []
    wanted: list[Wanted] = []
    for path in project.spec_files():
        display = project.relative(path)
        try:
            parsed = parse_spec(path.read_text(encoding="utf-8"), display)
        except CompileError as error:
            problems.extend(error.diagnostics)
            continue
        for index, flow in enumerate(parsed.spec.composing_flows):
            where = parsed.where.at(("composing_flows", index, "source" if flow.source else "name"), "")
            wanted.append(Wanted(flow.project_name, flow.name, flow.source, where))
    try:
        current = load_lock(project)
    except CompileError as error:
        problems.extend(error.diagnostics)
        current = None
    if problems:
        _fail(problems, "text")
    flows, problems = relock(wanted, current)
    if problems:
        _fail(problems, "text")
    text = render_lock(flows)
    display = project.relative(project.lock_path)
    if project.lock_path.exists() and project.lock_path.read_text(encoding="utf-8") == text:
        click.echo(f"{display} is up to date ({len(flows)} flows)")
        return
    from compiler.output import atomic_write

    atomic_write(project.lock_path, text)
    click.echo(f"wrote {display} ({len(flows)} flows)")


@main.command()
@click.argument("spec", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid")
def graph(spec: str, fmt: str) -> None:
    """Print the composition graph of SPEC."""
    from compiler.render import dot, mermaid

    plan = _plan_or_fail(spec)
    click.echo(mermaid(plan) if fmt == "mermaid" else dot(plan))


def _plan_or_fail(spec: str):  # noqa: ANN202 - returns compiler.plan.Plan
    from compiler.compile import compile_plan
    from compiler.output import load_lock

    project = _project()
    path = Path(spec)
    try:
        return compile_plan(path.read_text(encoding="utf-8"), project.relative(path), load_lock(project))
    except CompileError as error:
        _fail(error.diagnostics, "text")


@main.command()
def schema() -> None:
    """Print the JSON Schema of the spec format (for editors)."""
    from compiler.spec import spec_json_schema

    click.echo(json.dumps(spec_json_schema(), indent=2, sort_keys=True))


@main.command(context_settings={"ignore_unknown_options": False})
@click.argument("spec", type=click.Path(exists=True, dir_okay=False))
@click.option("-p", "--param", "params", multiple=True, metavar="ALIAS-PARAM=VALUE", help="A composite parameter.")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as one JSON object.")
def run(spec: str, params: tuple[str, ...], as_json: bool) -> None:
    """Run SPEC's generated flow on this machine, each child in-process from its source."""
    from compiler.runner import run_command

    sys.exit(run_command(_project(), Path(spec), params, as_json))


@main.command()
@click.argument("specs", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write what would be registered.")
@click.option("--no-image", is_flag=True, help="Skip building and pushing images.")
@click.option("--no-register", is_flag=True, help="Skip registering with Prefect.")
def build(specs: tuple[str, ...], json_path: str | None, no_image: bool, no_register: bool) -> None:
    """Generate, build each image, push it, and register each flow with Prefect."""
    from compiler.build import build_command

    project = _project()
    sys.exit(build_command(project, _spec_paths(project, specs), json_path, no_image, no_register))


@main.group()
def runtime() -> None:
    """flowc's runtime alone, for the interpreter that runs child flows ([tool.flowc] python)."""


@runtime.command("install")
@click.option(
    "--python",
    "python",
    metavar="PATH",
    help="The interpreter to install into (default: [tool.flowc] python).",
)
@click.option("--force", is_flag=True, help="Reinstall even when the same runtime is installed.")
def runtime_install(python: str | None, force: bool) -> None:
    """Install flowc's runtime (flowc-runtime: Prefect 1 + the standard library) into PATH."""
    from compiler.runtime_dist import RuntimeInstallError, install_runtime

    target = python or _project().python
    try:
        outcome = install_runtime(target, force=force)
    except RuntimeInstallError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    click.echo(outcome.message, err=True)


@runtime.command("wheel")
@click.option(
    "-o",
    "--output",
    "directory",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Directory to write the wheel into.",
)
def runtime_wheel(directory: str) -> None:
    """Build the flowc-runtime wheel (the same bytes for the same sources) and print its path."""
    from compiler.runtime_dist import build_wheel

    Path(directory).mkdir(parents=True, exist_ok=True)
    click.echo(str(build_wheel(Path(directory))))
