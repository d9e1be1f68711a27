"""Registration of prefect1 projects (through compiler.targets.prefect1.register, Prefect's own
idempotent machinery), or the `prefect build -o` document with --json."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from compiler.build.common import BuildFailure, Progress, Tally, Target, one_line, report_error


def _serialized_flows(targets: list[Target], tally: Tally) -> Iterator[tuple[Target, dict[str, Any]]]:
    """Each target's flow, loaded from its generated script and serialized as Prefect does."""
    from compiler.targets.prefect1.register import RegistrationError, load_flow, serialize_flow

    for target in targets:
        if target.name in tally.image_failed:
            tally.errored += 1
            click.echo(f"{target.name}: not registered: its image failed", err=True)
            continue
        try:
            flow = load_flow(target.directory / "flow.py", target.name)
            yield target, serialize_flow(flow)
        except RegistrationError as error:
            tally.errored += 1
            report_error(str(error))
        except Exception as error:  # noqa: BLE001 - Prefect's serializers raise many kinds
            tally.errored += 1
            report_error(f"{target.name}: cannot serialize the flow: {one_line(str(error))}")


def write_json(targets: list[Target], path: Path, tally: Tally, progress: Progress) -> None:
    """What would be registered, in the file format of `prefect build -o`; no server involved."""
    from compiler.targets.prefect1.register import write_flows_json

    serialized = [flow for _, flow in _serialized_flows(targets, tally)]
    try:
        write_flows_json(path, serialized)
    except OSError as error:
        raise BuildFailure(f"cannot write {path}: {error.strerror or error}") from None
    tally.written = len(serialized)
    progress.say(f"wrote {path} ({len(serialized)} flow{'s' if len(serialized) != 1 else ''})")
    projects = sorted({t.project_name for t in targets if t.name not in tally.image_failed})
    if len(projects) > 1:
        names = ", ".join(repr(p) for p in projects)
        progress.say(f"note: these flows belong to projects {names}; `prefect register --json` takes one --project")


def register_flows(targets: list[Target], tally: Tally, progress: Progress) -> None:
    """Register each flow in its spec's project (created when missing); unchanged flows are skipped."""
    from compiler.targets.prefect1.register import Backend, BackendUnreachable, backend_name

    try:
        backend = Backend()
        backend.ensure_reachable()
    except BackendUnreachable as error:
        name = backend_name()
        hint = (
            "set [server] endpoint in ~/.prefect/config.toml or PREFECT__SERVER__ENDPOINT"
            if name == "server"
            else "for a Prefect Server run `prefect backend server`"
        )
        raise BuildFailure(
            f"cannot reach the Prefect backend ({name}) at {_backend_url()}: {one_line(str(error))} "
            f"({hint}; or pass --no-register or --json FILE)"
        ) from None
    for target, serialized in _serialized_flows(targets, tally):
        try:
            _, created = backend.project_id(target.project_name)
            if created:
                progress.say(f"created project {target.project_name!r}")
            outcome = backend.register(serialized, target.project_name)
        except BackendUnreachable as error:
            raise BuildFailure(f"lost the Prefect backend at {_backend_url()}: {one_line(str(error))}") from None
        except Exception as error:  # noqa: BLE001 - ClientError and friends: this flow failed
            tally.errored += 1
            report_error(f"{target.name}: registration in {target.project_name!r} failed: {one_line(str(error))}")
            continue
        if outcome.is_new:
            tally.registered += 1
            progress.say(
                f"{target.name}: registered in {target.project_name!r} "
                f"(version {outcome.version}, id {outcome.flow_id})"
            )
        else:
            tally.skipped += 1
            progress.say(f"{target.name}: skipped (metadata unchanged) in {target.project_name!r}")


def _backend_url() -> str:
    """The configured endpoint as messages show it: never with its password."""
    from compiler.targets.prefect1.register import api_url
    from compiler.runtime.results import redacted_url

    return redacted_url(api_url())
