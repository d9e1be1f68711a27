"""Registration with Prefect 1, through Prefect's own CLI machinery.

`prefect register -p generated/<name>/flow.py` and `flowc build` must register the same thing
under the same idempotency key, so this module loads, prepares, serializes and registers flows
with the functions `prefect build` and `prefect register` use (prefect.cli.build_register), and
adds only what flowc needs around them: creating a missing project, a quick reachability check
(Prefect's client retries a refused connection for about a minute) and results as data.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import prefect

FLOWS_JSON_VERSION = 1  # the `version` of the file `prefect build -o` writes
REACHABILITY_TIMEOUT_S = 5.0


class RegistrationError(Exception):
    """A problem with one flow (it could not be loaded, or the backend refused it)."""


class BackendUnreachable(Exception):
    """No Prefect API answers where the configuration points; nothing can be registered."""


@dataclass(frozen=True)
class Registered:
    """The outcome of registering one flow: new version, or skipped because it is unchanged."""

    flow_name: str
    project_name: str
    flow_id: str
    version: int
    is_new: bool


def load_flow(script: Path, flow_name: str) -> prefect.Flow:
    """The flow named `flow_name` in a flow script, loaded as `prefect register -p` loads it."""
    import click
    from prefect.cli.build_register import TerminalError, load_flows_from_script

    try:
        # Prefect prints the traceback of a failing script itself (click.secho), then raises.
        flows = load_flows_from_script(str(script))
    except TerminalError as error:
        raise RegistrationError(f"{script}: the flow script does not load{_detail(error)}") from None
    except click.exceptions.ClickException as error:  # pragma: no cover - defensive
        raise RegistrationError(f"{script}: {error.format_message()}") from None
    for flow in flows:
        if flow.name == flow_name:
            return flow
    found = ", ".join(repr(f.name) for f in flows) or "none"
    raise RegistrationError(f"{script}: no flow named {flow_name!r} (found {found})")


def serialize_flow(flow: prefect.Flow) -> dict[str, Any]:
    """What `prefect build` writes and `prefect register` sends for one flow: storage built,
    labels merged, result defaulted (prepare_flows), then `serialize(build=False)`."""
    from prefect.cli.build_register import prepare_flows

    prepare_flows([flow])
    flow.storage.build()
    return flow.serialize(build=False)


def flows_document(serialized: list[dict[str, Any]]) -> dict[str, Any]:
    """The document `prefect build -o FILE` writes: version 1, flows sorted by name."""
    by_name = {flow["name"]: flow for flow in serialized}
    return {"version": FLOWS_JSON_VERSION, "flows": [by_name[name] for name in sorted(by_name)]}


def write_flows_json(path: Path, serialized: list[dict[str, Any]]) -> None:
    """Write the flows as `prefect build -o` does (json.dump, sorted keys), to the path as given
    (compiler.output.write_through: a regular file atomically, a link or a device through)."""
    from compiler.output import write_through

    write_through(path, json.dumps(flows_document(serialized), sort_keys=True))


def api_url() -> str:
    """The GraphQL endpoint Prefect's client would call (backend `server` or `cloud`)."""
    import prefect

    return str(prefect.context.config.cloud.api)


def backend_name() -> str:
    import prefect

    return str(prefect.config.backend)


def check_reachable(url: str, timeout: float = REACHABILITY_TIMEOUT_S) -> None:
    """One request without retries: any HTTP answer means something listens there."""
    try:
        # Inside the try: a malformed endpoint (`notaurl`) is a ValueError from Request itself.
        request = urllib.request.Request(url, method="GET", headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # an HTTP error status is still an answer (a GraphQL API may refuse bare GETs)
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise BackendUnreachable(f"{reason}") from None


class Backend:
    """The Prefect API the environment is configured for (`prefect backend`, PREFECT__* vars)."""

    def __init__(self, client: prefect.Client | None = None) -> None:
        import prefect

        self.url = client.api_server if client is not None else api_url()
        self._client = client or prefect.Client()
        self._projects: dict[str, str] = {}

    def ensure_reachable(self) -> None:
        check_reachable(self.url)

    def project_id(self, project_name: str) -> tuple[str, bool]:
        """The project's id, creating the project when it does not exist; (id, created)."""
        from prefect.cli.build_register import TerminalError, get_project_id

        if project_name in self._projects:
            return self._projects[project_name], False
        created = False
        try:
            project_id = self._call(lambda: get_project_id(self._client, project_name))
        except TerminalError:  # Prefect's "Project ... does not exist"
            project_id = self._call(lambda: self._client.create_project(project_name))
            created = True
        self._projects[project_name] = project_id
        return project_id, created

    def register(self, serialized: dict[str, Any], project_name: str) -> Registered:
        """Register one serialized flow with Prefect's idempotency key; unchanged flows are skipped."""
        from prefect.cli.build_register import register_serialized_flow

        project_id, _ = self.project_id(project_name)
        flow_id, version, is_new = self._call(
            lambda: register_serialized_flow(self._client, serialized, project_id, force=False, schedule=True)
        )
        return Registered(serialized["name"], project_name, flow_id, version, is_new)

    def _call(self, action: Any) -> Any:
        import requests

        try:
            return action()
        except requests.exceptions.ConnectionError as error:
            raise BackendUnreachable(str(error)) from None


def _detail(error: BaseException) -> str:
    text = str(error)
    return f": {text}" if text else " (see the traceback above)"
