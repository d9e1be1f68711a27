"""The `flowc` command line: argument parsing and printing only; the stages do the work."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from compiler import __version__, console
from compiler.completion import complete_params, complete_specs
from compiler.config import ConfigError, Project, find_project
from compiler.diagnostics import CompileError, Diagnostic, format_diagnostics

FORMATS = click.Choice(["text", "json", "github"])


def _common_options() -> list[click.Option]:
    """-q, -v and --color, which every command takes (added by FlowcGroup, so new ones get them)."""

    def setter(name: str):  # noqa: ANN202 - a click callback
        return lambda ctx, param, value: console.configure(**{name: value})

    return [
        click.Option(
            ["-q", "--quiet"], is_flag=True, expose_value=False, is_eager=True, callback=setter("quiet"),
            help="Print nothing on success (errors still print).",
        ),
        click.Option(
            ["-v", "--verbose"], count=True, expose_value=False, is_eager=True, callback=setter("verbose"),
            help="Say more: what was unchanged or skipped, and why.",
        ),
        click.Option(
            ["--color"], type=click.Choice(console.COLOR_CHOICES), default="auto", show_default=True,
            expose_value=False, is_eager=True, callback=setter("color"),
            help="Colour output; auto: on a terminal, unless NO_COLOR is set (FORCE_COLOR forces it).",
        ),
    ]


class FlowcGroup(click.Group):
    """A click group that gives every command flowc's common options."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        taken = {opt for param in cmd.params for opt in getattr(param, "opts", ())}
        cmd.params.extend(option for option in _common_options() if not taken & set(option.opts))
        super().add_command(cmd, name)


@click.group(cls=FlowcGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="flowc")
def main() -> None:
    """Compile LUME flow-of-flows specs into ordinary Prefect 1 projects.

    \b
    Start:   flowc init my_project && cd my_project && flowc generate && flowc run specs/pipeline.yaml
    Docs:    docs/README.md in flowc's repository (spec format, lock, commands, configuration)
    Exit codes: 0 success, 1 problems found or a run failed, 2 usage errors.
    """


def _project() -> Project:
    try:
        return find_project()
    except ConfigError as error:
        click.echo(str(error), err=True)
        sys.exit(1)


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
    if style == "text":
        console.error(format_diagnostics(diagnostics, style))
        count = len(set(diagnostics))
        console.error(f"{count} error{'s' if count != 1 else ''}; nothing was written")
    else:
        console.out(format_diagnostics(diagnostics, style))
    sys.exit(1)


@main.command()
@click.argument("specs", nargs=-1, type=click.Path(dir_okay=False), shell_complete=complete_specs)
@click.option("--format", "style", type=FORMATS, default="text", help="How to print diagnostics.")
@click.option("--watch", is_flag=True, help="Regenerate whenever specs, the lock or templates change.")
@click.option(
    "--fail-on-change",
    is_flag=True,
    help="Exit 1 when a file was written or removed (for pre-commit: new files count too).",
)
def generate(specs: tuple[str, ...], style: str, watch: bool, fail_on_change: bool) -> None:
    """Compile specs (default: every specs/*.yaml) into generated/; writes only what changed.

    \b
    Examples:
      flowc generate                          # every spec under [tool.flowc] specs
      flowc generate specs/pipeline.yaml -q   # one spec, silent on success
      flowc generate --format json | jq .     # diagnostics as JSON on stdout ([] when none)
    Exit codes: 0 written (or nothing to do); 1 spec errors (nothing written), or with
    --fail-on-change a file was written or removed; 2 usage errors.
    """
    project = _project()
    if watch:
        from compiler.watch import watch_and_generate

        watch_and_generate(project, _spec_paths(project, specs), style)
        return
    code = run_generate(project, _spec_paths(project, specs), style, fail_on_change=fail_on_change)
    sys.exit(code)


def run_generate(
    project: Project,
    spec_paths: list[Path] | None,
    style: str,
    quiet: bool = False,
    fail_on_change: bool = False,
    counts: bool = True,
) -> int:
    """One generate pass; returns the exit code. Shared by `generate` and `build` (which says only
    what it wrote: `counts=False` drops the summary line)."""
    from filelock import FileLock

    from compiler.output import build_tree, load_lock, write_tree

    try:
        lock = load_lock(project)
    except CompileError as error:
        _fail(error.diagnostics, style)
    with FileLock(_generate_lock_path(project)):
        with console.progress_bar("generating") as progress:
            tree = build_tree(project, spec_paths, lock, progress)
        if tree.diagnostics:
            _fail(tree.diagnostics, style)
        try:
            report = write_tree(project, tree)
        except OSError as error:  # disk full, permissions: write_tree has put everything back
            unchanged = project.relative(project.generated_dir)
            click.echo(f"error: cannot write generated files: {error}; {unchanged}/ is unchanged", err=True)
            sys.exit(1)
    # People read these on stderr; with --format json, stdout holds the (empty) diagnostics only.
    if style == "json":
        console.out("[]")
    if not quiet:
        for path in report.written:
            edited = " (overwrote a hand edit: change the spec instead)" if path in report.hand_edited else ""
            console.info(f"wrote {path}{edited}")
        for path in report.removed:
            console.info(f"removed {path}")
        console.detail(f"{tree.skipped} spec(s) up to date by their headers, not rendered")
        if counts:
            console.info(
                f"{tree.specs} spec{'s' if tree.specs != 1 else ''}: {len(report.written)} file(s) written, "
                f"{report.unchanged} unchanged, {len(report.removed)} removed"
            )
    return 1 if fail_on_change and (report.written or report.removed) else 0


def _generate_lock_path(project: Project) -> str:
    """Where concurrent generates serialise: .flowc/ in the project, else (a read-only root) this
    machine's cache."""
    state = project.root / ".flowc"
    try:
        state.mkdir(exist_ok=True)
        return str(state / "generate.lock")
    except OSError:
        import hashlib

        from compiler.rendercache import cache_dir

        locks = cache_dir() / "locks"
        try:
            locks.mkdir(parents=True, exist_ok=True)
        except OSError:
            import tempfile

            locks = Path(tempfile.gettempdir())
        return str(locks / f"generate-{hashlib.sha256(str(project.root).encode()).hexdigest()[:16]}.lock")


@main.command()
@click.argument("specs", nargs=-1, type=click.Path(dir_okay=False), shell_complete=complete_specs)
@click.option("--format", "style", type=FORMATS, default="text", help="How to print diagnostics.")
@click.option("--stat", is_flag=True, help="List the files that differ (and how), without their diffs.")
def check(specs: tuple[str, ...], style: str, stat: bool) -> None:
    """Write nothing; print a diff for every stale, missing or orphaned file and a drifted lock.

    Lines that differ only in digests or image tags are folded into one line per file.

    \b
    Examples:
      flowc check                       # diffs on stdout, problems and the summary on stderr
      flowc check --stat                # which files differ, not how
      flowc check --format github       # CI annotations on stdout, diffs on stderr
    Exit codes: 0 up to date; 1 stale, missing or orphaned files, lock drift, or spec errors;
    2 usage errors.
    """
    from compiler.lock import drifted, render_lock
    from compiler.output import build_tree, load_lock, stale_files
    from compiler.targets.prefect3.capture import capturer

    project = _project()
    try:
        lock = load_lock(project)
    except CompileError as error:
        _fail(error.diagnostics, style)
    tree = build_tree(project, _spec_paths(project, specs), lock)
    if tree.diagnostics:
        _fail(tree.diagnostics, style)
    stale = stale_files(project, tree)
    changes = [(item.path, item.current, item.expected) for item in stale]
    problems = [item.diagnostic() for item in stale]
    drift = drifted(lock, project.root, project.python, capture3=capturer(project))
    lock_display = project.relative(project.lock_path)
    lock_text = project.lock_path.read_text(encoding="utf-8") if project.lock_path.exists() else ""
    for key, changes_of_flow in sorted(drift.changes.items()):
        message = f"{key} no longer matches its source {lock.flows[key].source}: {'; '.join(changes_of_flow)}; run `flowc lock`"
        problems.append(Diagnostic(lock_display, _lock_line(lock_text, key), 1, message))
    for key, error in sorted(drift.failed.items()):
        problems.append(Diagnostic(lock_display, _lock_line(lock_text, key), 1, error))
    if drift.lock is not None:
        changes.append((lock_display, lock_text, render_lock(drift.lock.flows.values())))
    if style == "json":
        console.out(format_diagnostics(problems, "json"))
    else:
        for note in drift.notes:
            console.note(note)
        if changes:
            from compiler.diffview import show_changes

            show_changes(changes, stat, to_stderr=style == "github")
        if problems:
            if style == "text":
                console.error(format_diagnostics(problems, style))
            else:
                console.out(format_diagnostics(problems, style))
    if problems:
        if style == "text":
            console.error(
                f"{len(problems)} problem(s): run `flowc generate` for generated files, `flowc lock` for the lock"
            )
        sys.exit(1)
    if style == "text":
        console.detail(f"{tree.skipped} of {tree.specs} spec(s) taken from this machine's render cache, not rendered")
        if tree.specs == 0:
            where = project.relative(project.specs_dir)
            console.info(f"nothing to check: no specs in {where}/ ({project.specs_dir}); see [tool.flowc] specs")
        else:
            console.info(f"{tree.specs} spec(s) up to date")


def _lock_line(lock_text: str, key: str) -> int:
    """The line of a flow's entry in the lock, so annotations land on it."""
    for number, line in enumerate(lock_text.splitlines(), start=1):
        if line.strip() in (f"{key}:", f"'{key}':", f'"{key}":'):
            return number
    return 1


@main.command()
@click.option("--check", "check_only", is_flag=True, help="Re-capture every interface, write nothing; exit 1 with a diff when the lock differs.")
def lock(check_only: bool) -> None:
    """(Re)write the lock from each composing flow's source (or the Prefect backend).

    Run it before `flowc generate` whenever a spec names a new child flow or a child's
    parameters or tasks changed.

    \b
    Examples:
      flowc lock            # writes specs/flows.lock.yaml (or says it is up to date)
      flowc lock -q && flowc generate
      flowc lock --check    # CI: re-capture, write nothing; a diff and exit 1 when the lock differs
    Exit codes: 0 written or up to date; 1 spec errors, a source that cannot be captured, or
    (--check) a lock that differs.
    """
    from compiler.lock import relock, render_lock, wanted_flows
    from compiler.output import atomic_write, load_lock, unified_diff
    from compiler.targets.prefect3.capture import capturer

    project = _project()
    wanted, problems = wanted_flows(project)
    try:
        current = load_lock(project)
    except CompileError as error:
        problems.extend(error.diagnostics)
        current = None
    if problems:
        _fail(problems, "text")
    relocked = relock(wanted, current, project.root, project.python, capture3=capturer(project))
    for note in relocked.notes:
        console.note(note)
    if relocked.problems:
        _fail(relocked.problems, "text")
    flows = relocked.flows
    text = render_lock(flows)
    display = project.relative(project.lock_path)
    before = project.lock_path.read_text(encoding="utf-8") if project.lock_path.is_file() else None
    if before == text:
        console.info(f"{display} is up to date ({len(flows)} flows)")
        return
    if check_only:
        console.out(unified_diff(display, before, text), nl=False)
        line = _first_difference(before or "", text)
        console.error(f"{display}:{line}:1: error: the lock differs from what its sources give now; run `flowc lock`")
        sys.exit(1)
    try:
        atomic_write(project.lock_path, text)
    except OSError as error:
        console.error(f"{display}:1:1: error: cannot write the lock: {error.strerror or error}; it is unchanged")
        sys.exit(1)
    console.info(f"wrote {display} ({len(flows)} flows)")


def _first_difference(before: str, after: str) -> int:
    old, new = before.splitlines(), after.splitlines()
    return next((i for i, (a, b) in enumerate(zip(old, new), start=1) if a != b), min(len(old), len(new)) + 1)


@main.command()
@click.argument("spec", type=click.Path(exists=True, dir_okay=False), shell_complete=complete_specs)
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", help="Graph language.")
def graph(spec: str, fmt: str) -> None:
    """Print the composition graph of SPEC (Mermaid, or Graphviz dot).

    \b
    Examples:
      flowc graph specs/pipeline.yaml
      flowc graph specs/pipeline.yaml --format dot | dot -Tsvg > graph.svg
    Exit codes: 0 printed; 1 spec errors; 2 usage errors.
    """
    from compiler.graph import dot, mermaid

    plan = _plan_or_fail(spec)
    console.out(mermaid(plan) if fmt == "mermaid" else dot(plan))


def _plan_or_fail(spec: str):  # noqa: ANN202 - returns compiler.plan.Plan
    from compiler.compile import compile_plan
    from compiler.output import load_lock, read_spec

    project = _project()
    path = Path(spec)
    try:
        display = project.relative(path)
        return compile_plan(read_spec(path, display), display, load_lock(project), project.target)
    except CompileError as error:
        _fail(error.diagnostics, "text")


@main.command()
def schema() -> None:
    """Print the JSON Schema of the spec format (for editors).

    \b
    Example:
      flowc schema > specs/flowc.schema.json
    Exit codes: 0.
    """
    from compiler.spec import spec_json_schema

    console.out(json.dumps(spec_json_schema(), indent=2, sort_keys=True))


@main.command(context_settings={"ignore_unknown_options": False})
@click.argument("spec", type=click.Path(exists=True, dir_okay=False), shell_complete=complete_specs)
@click.option(
    "-p", "--param", "params", multiple=True, metavar="ALIAS-PARAM=VALUE",
    shell_complete=complete_params, help="A composite parameter; the value is YAML (1000 is an int).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as one JSON object.")
@click.option("--timeout", "timeout", metavar="DURATION", help="Stop the whole run after this long (45, 30s, 5m, 2h).")
@click.option(
    "--resume/--fresh", "resume", default=False,
    help="--resume: reuse every child whose run key has a successful record under .flowc/runs/, and run "
    "the rest; --fresh (the default): run every child.",
)
def run(spec: str, params: tuple[str, ...], as_json: bool, timeout: str | None, resume: bool) -> None:
    """Run SPEC's generated flow on this machine, each child flow in a process of its own.

    \b
    Examples:
      flowc run specs/pipeline.yaml
      flowc run specs/pipeline.yaml -p produce-n=5 --timeout 2h
      flowc run specs/pipeline.yaml --resume
      flowc run specs/pipeline.yaml --json | jq .state
    Exit codes: 0 every child succeeded; 1 a child failed, or the spec or generated flow is
    stale or wrong; 2 usage errors; 130/143 interrupted.
    """
    from compiler.local.run import run_command
    from compiler.compile import spec_target
    from compiler.fingerprint import spec_data
    from compiler.preflight import results_store_problem

    timeout_s = None
    if timeout is not None:
        from compiler.spec import duration_seconds

        try:
            timeout_s = duration_seconds(timeout)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--timeout") from None
    problem = results_store_problem()
    if problem:
        console.error(f"error: {problem}")
        sys.exit(1)
    project = _project()
    if spec_target(spec_data(Path(spec).read_text(encoding="utf-8")), project.target) == "prefect3":
        from compiler.targets.prefect3.local import run_command as run_prefect3

        sys.exit(run_prefect3(project, Path(spec), params, as_json))
    sys.exit(run_command(project, Path(spec), params, as_json, timeout_s, resume=resume))


@main.command()
@click.argument("specs", nargs=-1, type=click.Path(dir_okay=False), shell_complete=complete_specs)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write what would be registered.")
@click.option("--no-image", is_flag=True, help="Skip building and pushing images.")
@click.option("--no-register", is_flag=True, help="Skip registering with Prefect.")
@click.option(
    "--dry-run", is_flag=True,
    help="Print what would be built, pushed and registered; do none of it (exit 0 nothing to do, 2 changes).",
)
@click.option(
    "--format", "style", type=click.Choice(["text", "json"]), default="text",
    help="With --dry-run: the plan as text, or as one JSON document on stdout.",
)
def build(
    specs: tuple[str, ...], json_path: str | None, no_image: bool, no_register: bool, dry_run: bool, style: str
) -> None:
    """Generate, build each image, push it, and register each flow with Prefect.

    \b
    Examples:
      flowc build                                 # every spec: images, push, register
      flowc build specs/pipeline.yaml --no-register
      flowc build --no-image --json flows.json    # what would be registered, no server
      flowc build --dry-run --format json | jq '.specs[] | {name, image_action, register_action}'
    Exit codes: 0 done; 1 an image, a registration or the setup failed (no engine,
    registry or backend); 2 usage errors. With --dry-run: 0 nothing would change,
    2 something would (or could not be checked), 1 errors.
    """
    from compiler.build import build_command

    project = _project()
    if dry_run:
        from compiler.dryrun import dry_run as plan_build, print_plan

        if json_path is not None:
            raise click.UsageError("--dry-run and --json FILE: choose one")
        sys.exit(print_plan(plan_build(project, _spec_paths(project, specs), no_image, no_register), style))
    if style != "text":
        raise click.UsageError("--format applies to --dry-run only")
    sys.exit(build_command(project, _spec_paths(project, specs), json_path, no_image, no_register, run_generate))


@main.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.pass_context
def init(ctx: click.Context, directory: str) -> None:
    """Scaffold a working project in DIRECTORY (default: here); never overwrites a file.

    It writes pyproject.toml ([tool.flowc]), a package with two child flows whose results are
    mappable, specs/<name>.yaml composing them, its lock (captured as `flowc lock` does),
    .gitignore (.flowc/) and .pre-commit-config.yaml; <name> comes from the directory's name.

    \b
    Example:
      flowc init my-pipeline && cd my-pipeline && flowc generate && flowc run specs/my_pipeline.yaml
    Exit codes: 0 written; 1 a file exists already (nothing is written) or the lock could not
    be captured (nothing is left behind); 2 usage errors.
    """
    from compiler.scaffold import init_project

    def capture_lock() -> int:
        try:
            ctx.invoke(lock)
        except SystemExit as stop:
            return int(stop.code or 0)
        return 0

    sys.exit(init_project(Path(directory), capture_lock))


@main.group(cls=FlowcGroup)
def runtime() -> None:
    """flowc's runtime alone, for the interpreter that runs child flows ([tool.flowc] python).

    \b
    Examples:
      flowc runtime install                       # into [tool.flowc] python
      flowc runtime wheel -o dist/
    Exit codes: 0 done; 1 the install or build failed; 2 usage errors.
    """


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
        console.error(f"error: {error}")
        sys.exit(1)
    console.info(outcome.message)


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
    console.out(str(build_wheel(Path(directory))))
