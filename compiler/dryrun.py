"""`flowc build --dry-run`: what `flowc build` would do, without building, pushing or registering.

Per spec: the image tag, and whether the image would be built, pushed or is up to date; whether
the flow would be registered as a new version or skipped. Each answer comes from whoever can give
it without changing anything: the Docker engine (when one answers) for local images, the
registry's HTTP API for pushed tags, the Prefect backend for the latest version's idempotency key
(the sha256 of the serialized flow, as `prefect register` computes it). Whatever nobody answers is
`unknown`, which counts as a change: exit 0 only when nothing would change, 2 otherwise, 1 on errors.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from compiler import console
from compiler.build import INPUTS_LABEL, Target, registry_of
from compiler.config import Project

PROBE_TIMEOUT_S = 3.0
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)
UP_TO_DATE, SKIPPED = "up to date", "skipped"


@dataclass
class SpecPlan:
    spec: str
    name: str
    project: str
    image: str
    image_action: str  # build | build and push | push | up to date | unknown | not checked
    image_reason: str
    register_action: str  # new version | skipped | unknown | not checked
    register_reason: str
    idempotency_key: str | None = None

    @property
    def changes(self) -> bool:
        return self.image_action not in (UP_TO_DATE, "not checked") or self.register_action not in (
            SKIPPED,
            "not checked",
        )


@dataclass
class DryRun:
    stale: list[str] = field(default_factory=list)  # generated files `flowc build` would write first
    specs: list[SpecPlan] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return bool(self.stale) or any(plan.changes for plan in self.specs)

    def as_json(self) -> dict[str, Any]:
        return {
            "changes": self.changes,
            "generate": {"would_write": self.stale},
            "specs": [asdict(plan) for plan in self.specs],
            "errors": self.errors,
        }


def dry_run(project: Project, spec_paths: list[Path] | None, no_image: bool, no_register: bool) -> DryRun:
    """The plan of `flowc build` for these specs; reads, never writes (generated/ included)."""
    from compiler.build import load_targets
    from compiler.output import build_tree, load_lock, stale_files

    result = DryRun()
    tree = build_tree(project, spec_paths, load_lock(project))
    if tree.diagnostics:
        result.errors = [d.format() for d in tree.diagnostics]
        return result
    result.stale = [item.path for item in stale_files(project, tree)]
    targets = load_targets(project, spec_paths)
    engine = None if no_image else _engine()
    backend = None if no_register else _Backend.connect()
    for target in targets:
        if no_image:
            image_action, image_reason = "not checked", "--no-image"
        else:
            image_action, image_reason = _image_action(target, engine)
        key = None
        if no_register:
            register_action, register_reason = "not checked", "--no-register"
        else:
            text = tree.rendered.get(f"{target.name}/flow.py")
            try:
                key = idempotency_key(target, text)
            except Exception as error:  # noqa: BLE001 - Prefect's loaders raise many kinds
                result.errors.append(f"{target.name}: cannot serialize the flow: {' '.join(str(error).split())}")
                continue
            register_action, register_reason = backend.decide(target, key)
        result.specs.append(
            SpecPlan(
                spec=target.spec,
                name=target.name,
                project=target.project_name,
                image=target.image,
                image_action=image_action,
                image_reason=image_reason,
                register_action=register_action,
                register_reason=register_reason,
                idempotency_key=key,
            )
        )
    if engine is not None:
        engine.close()
    return result


# Images -----------------------------------------------------------------------------------------


def _engine() -> Any:
    """A Docker client when an engine answers quickly, else None (the dry run goes on without)."""
    try:
        import docker

        client = docker.from_env(timeout=PROBE_TIMEOUT_S)
        client.ping()
        return client
    except Exception:  # noqa: BLE001 - no engine is an answer here, not an error
        return None


def _image_action(target: Target, engine: Any) -> tuple[str, str]:
    registry = registry_of(target.repository)
    in_registry, registry_reason = (None, "") if registry is None else registry_has(target)
    local: bool | None = None
    if engine is not None:
        local = _local_matches(engine, target)
    if registry is None:
        if local is None:
            return "unknown", "no Docker engine answers (DOCKER_HOST), and the image names no registry"
        return (UP_TO_DATE, "a local image carries these inputs") if local else ("build", "no local image with this tag")
    if in_registry:
        return UP_TO_DATE, f"{registry} has the tag"
    if in_registry is None:
        if local:
            return "unknown", f"the local image is current; {registry_reason}"
        return "unknown", registry_reason
    if local:
        return "push", f"the local image is current; {registry} lacks the tag"
    return "build and push", f"{registry} lacks the tag" + ("" if local is False else "; no Docker engine to ask for a local image")


def _local_matches(engine: Any, target: Target) -> bool | None:
    try:
        image = engine.images.get(target.image)
    except Exception as error:  # noqa: BLE001
        return False if type(error).__name__ == "ImageNotFound" else None
    labels = image.attrs.get("Config", {}).get("Labels") or {}
    return labels.get(INPUTS_LABEL) == target.inputs_digest


def registry_has(target: Target) -> tuple[bool | None, str]:
    """Whether the registry holds the tag, asked over its HTTP API (no engine); None: no answer."""
    registry = registry_of(target.repository) or ""
    path = target.repository[len(registry) + 1 :]
    host = registry.split(":", 1)[0]
    scheme = "http" if host in ("localhost", "127.0.0.1") or host.startswith("127.") else "https"
    url = f"{scheme}://{registry}/v2/{path}/manifests/{target.tag}"
    request = urllib.request.Request(url, method="HEAD", headers={"Accept": MANIFEST_TYPES})
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S):
            return True, ""
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return False, ""
        if error.code in (401, 403):
            return None, f"registry {registry} wants a login to answer ({error.code})"
        return None, f"registry {registry} answered {error.code}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return None, f"registry {registry} does not answer ({reason}); start it, e.g. `bash scripts/registry.sh start`"


# Registration -----------------------------------------------------------------------------------


def idempotency_key(target: Target, rendered: str | None) -> str:
    """`prefect register`'s key: sha256 of the serialized flow with sorted keys.

    The flow is loaded from the text `generate` would write (the file on disk when it is current),
    in a scratch directory: its storage names /opt/flowc/flow.py, so where it loads from does not
    change the serialized flow.
    """
    from compiler.targets.prefect1.register import load_flow, serialize_flow

    script = target.directory / "flow.py"
    if rendered is None:
        return _key(serialize_flow(load_flow(script, target.name)))
    with tempfile.TemporaryDirectory(prefix="flowc-dry-run-") as scratch:
        copy = Path(scratch) / "flow.py"
        copy.write_text(rendered, encoding="utf-8")
        return _key(serialize_flow(load_flow(copy, target.name)))


def _key(serialized: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(serialized, sort_keys=True).encode()).hexdigest()


class _Backend:
    """The Prefect API, asked only questions; `unknown` for everything when nobody answers."""

    def __init__(self, client: Any, url: str, reason: str) -> None:
        self.client = client
        self.url = url
        self.reason = reason
        self.projects: dict[str, str | None] = {}

    @classmethod
    def connect(cls) -> _Backend:
        from compiler.targets.prefect1.register import BackendUnreachable, api_url, check_reachable

        url = api_url()
        try:
            check_reachable(url, timeout=PROBE_TIMEOUT_S)
        except BackendUnreachable as error:
            return cls(None, url, f"no Prefect backend answers at {url} ({error}); start one, or pass --no-register")
        import prefect

        return cls(prefect.Client(), url, "")

    def decide(self, target: Target, key: str) -> tuple[str, str]:
        if self.client is None:
            return "unknown", self.reason
        try:
            project_id = self._project_id(target.project_name)
            if project_id is None:
                return "new version", f"project {target.project_name!r} does not exist yet (it would be created)"
            latest = self._latest(target.name, project_id)
        except Exception as error:  # noqa: BLE001 - requests' and Prefect's errors: no answer
            return "unknown", f"the backend at {self.url} did not answer: {' '.join(str(error).split())[:200]}"
        if latest is None:
            return "new version", "not registered yet (version 1)"
        settings = (latest.get("flow_group") or {}).get("settings") or {}
        if settings.get("idempotency_key") == key:
            return SKIPPED, f"version {latest['version']} has this idempotency key"
        return "new version", f"version {latest['version'] + 1} (the serialized flow changed)"

    def _project_id(self, name: str) -> str | None:
        if name not in self.projects:
            from prefect.utilities.graphql import with_args

            answer = self.client.graphql(
                {"query": {with_args("project", {"where": {"name": {"_eq": name}}}): {"id"}}},
                retry_on_api_error=False,
            )
            found = answer.data.project
            self.projects[name] = found[0].id if found else None
        return self.projects[name]

    def _latest(self, name: str, project_id: str) -> dict[str, Any] | None:
        from prefect.utilities.graphql import EnumValue, with_args

        where = {"_and": {"name": {"_eq": name}, "project": {"id": {"_eq": project_id}}}}
        answer = self.client.graphql(
            {
                "query": {
                    with_args("flow", {"where": where, "order_by": {"version": EnumValue("desc")}, "limit": 1}): {
                        "id": True,
                        "version": True,
                        "flow_group": {"settings"},
                    }
                }
            },
            retry_on_api_error=False,
        )
        flows = answer.data.flow
        if not flows:
            return None
        flow = flows[0]
        group = flow.get("flow_group") or {}
        return {"id": flow.id, "version": int(flow.version), "flow_group": {"settings": dict(group.get("settings") or {})}}


# Printing ---------------------------------------------------------------------------------------


def print_plan(result: DryRun, style: str) -> int:
    """The plan on stdout (a table, or one JSON document), a summary on stderr; the exit code."""
    code = 1 if result.errors else (2 if result.changes else 0)
    if style == "json":
        console.out(json.dumps(result.as_json(), indent=2, sort_keys=True))
        for error in result.errors:
            console.error(f"error: {error}")
        return code
    for error in result.errors:
        console.error(f"error: {error}")
    if result.stale:
        console.out(f"generate: {len(result.stale)} file(s) would be written first ({', '.join(result.stale[:3])}"
                    f"{', ...' if len(result.stale) > 3 else ''})")
    for plan in result.specs:
        console.out(f"{plan.name} ({plan.spec})")
        console.out(f"  image     {plan.image}: {plan.image_action}" + (f" ({plan.image_reason})" if plan.image_reason else ""))
        console.out(f"  register  {plan.project}/{plan.name}: {plan.register_action}"
                    + (f" ({plan.register_reason})" if plan.register_reason else ""))
    if not result.errors:
        changing = sum(plan.changes for plan in result.specs)
        console.info(
            "nothing would change" if not result.changes
            else f"{changing} of {len(result.specs)} spec(s) would change (or could not be checked); nothing was done"
        )
    return code

