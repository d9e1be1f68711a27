"""The `flowc build` command: generate, build and push each project's image, then register its flow.

The image of `generated/<name>/` is tagged with the plan's content hash (the inputs digest that
also names it in flow.py's IMAGE), so an image that exists under its tag is up to date and is
neither rebuilt nor pushed again. Its build context is `generated/<name>/` plus `wheels/` holding
flowc's own wheel (the runtime flow.py imports), and it builds with the network off.
Registration goes through compiler.targets.prefect1.register (Prefect's own machinery, idempotent).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from compiler import console
from compiler.build.common import BuildFailure, Progress, Tally, Target, report_error
from compiler.build.images import build_images
from compiler.build.register import register_flows, write_json
from compiler.config import Project


def build_command(
    project: Project,
    spec_paths: list[Path] | None,
    json_path: str | None,
    no_image: bool,
    no_register: bool,
    generate: Callable[..., int],
) -> int:
    """The whole `flowc build`; returns the exit code. `generate` is the command's generate pass
    (compiler.commands.generate.run_generate), run first so the images hold what the specs say."""
    code = generate(project, spec_paths, "text", counts=False)
    if code:
        return code
    tally = Tally()
    progress = Progress()
    try:
        targets = load_targets(project, spec_paths)
        if not no_image:
            build_images(targets, tally, progress, push=True)
        flows = [t for t in targets if t.target == "prefect1"]
        deployments = [t for t in targets if t.target == "prefect3" and t.name not in tally.image_failed]
        if json_path is not None:
            write_json(flows, Path(json_path), tally, progress)
        elif not no_register:
            if flows:
                register_flows(flows, tally, progress)
            if deployments:
                deploy_prefect3(project, deployments, tally, progress)
    except BuildFailure as failure:
        report_error(str(failure))
        return 1
    console.info(summary(tally, no_image=no_image, json_path=json_path, no_register=no_register))
    return 1 if tally.failed or tally.errored else 0


def summary(tally: Tally, *, no_image: bool, json_path: str | None, no_register: bool) -> str:
    """`N built, N up to date; N registered, N skipped, N errored`, in the spirit of `prefect register`
    (`, N pushed` and `, N failed` join the first part when there are any)."""
    if no_image:
        images = "images skipped"
    else:
        images = f"{tally.built} built, {tally.up_to_date} up to date"
        if tally.pushed:
            images += f", {tally.pushed} pushed"
        if tally.failed:
            images += f", {tally.failed} failed"
    if json_path is not None:
        flows = f"{tally.written} written to {json_path}, {tally.errored} errored"
    elif no_register:
        flows = "registration skipped"
    else:
        flows = f"{tally.registered} registered, {tally.skipped} skipped, {tally.errored} errored"
        if tally.deployed or tally.unchanged:
            flows += f"; {tally.deployed} deployed, {tally.unchanged} unchanged"
    return f"{images}; {flows}"


def deploy_prefect3(project: Project, targets: list[Target], tally: Tally, progress: Progress) -> None:
    """Create or update each prefect3 composite's deployment on PREFECT_API_URL (its prefect.yaml)."""
    from compiler.targets.prefect3.deploy import DeployFailure, deploy

    try:
        outcomes = deploy([t.directory for t in targets], project.children_python("prefect3"))
    except DeployFailure as failure:
        raise BuildFailure(str(failure)) from None
    for outcome in outcomes:
        if outcome.status == "failed":
            tally.errored += 1
            report_error(f"{outcome.name}: deployment failed: {outcome.detail}")
        elif outcome.status == "unchanged":
            tally.unchanged += 1
            progress.say(f"{outcome.name}: unchanged ({outcome.detail})")
        else:
            tally.deployed += 1
            progress.say(f"{outcome.name}: {outcome.status} ({outcome.detail})")


def load_targets(project: Project, spec_paths: list[Path] | None) -> list[Target]:
    """The plan of every spec (already validated by the generate pass)."""
    from compiler.compile import compile_plan
    from compiler.diagnostics import CompileError
    from compiler.output import load_lock

    lock = load_lock(project)
    targets = []
    for path in project.spec_files() if spec_paths is None else spec_paths:
        display = project.relative(path)
        try:
            plan = compile_plan(path.read_text(encoding="utf-8"), display, lock, project.target)
        except CompileError as error:  # pragma: no cover - generate reported it already
            raise BuildFailure(f"{display}: {error.diagnostics[0].message}") from None
        targets.append(
            Target(
                name=plan.name,
                spec=display,
                project_name=plan.project_name,
                repository=plan.image_repository,
                tag=plan.image_tag,
                inputs_digest=plan.inputs_digest,
                directory=project.generated_dir / plan.name,
                target=plan.target or project.target,
            )
        )
    return targets
