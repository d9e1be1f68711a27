"""The `flowc` command line: argument parsing and printing only; the stages do the work."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from compiler import __version__, console
from compiler.completion import complete_params, complete_specs
from compiler.config import ConfigError, Project, find_project
from compiler.commands.common import fail
from compiler.commands.generate import run_generate
from compiler.diagnostics import CompileError

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
    from compiler.commands.check import run_check

    project = _project()
    run_check(project, _spec_paths(project, specs), style, stat)


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
    from compiler.commands.lock import run_lock

    run_lock(_project(), check_only)


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
        fail(error.diagnostics, "text")


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
        from compiler.targets.prefect3.local import unsupported_options

        refused = unsupported_options(project, Path(spec), resume=resume, timeout=timeout)
        if refused:
            console.error(refused)
            sys.exit(2)
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
