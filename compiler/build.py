"""`flowc build`: generate, build and push each project's image, then register its flow.

The image of `generated/<name>/` is tagged with the plan's content hash (the inputs digest that
also names it in flow.py's IMAGE), so an image that exists under its tag is up to date and is
neither rebuilt nor pushed again. Its build context is `generated/<name>/` plus `wheels/` holding
flowc's own wheel (the runtime flow.py imports), and it builds with the network off.
Registration goes through compiler.targets.prefect1.register (Prefect's own machinery, idempotent).
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from compiler import console
from compiler.config import Project
from compiler.rendercache import cache_dir

if TYPE_CHECKING:
    import docker

BUILD_LOG_TAIL_LINES = 25
DOCKER_TIMEOUT_S = 600  # a build step may stay silent for minutes (pip, compilers)
WHEEL_SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01: zip timestamps fixed, so the wheel is reproducible
INPUTS_LABEL = "io.flowc.inputs"
# How the engine words a registry it cannot reach (Go's net errors, as dockerd relays them).
UNREACHABLE_SIGNS = ("connection refused", "no such host", "i/o timeout", "dial tcp", "network is unreachable")


class BuildFailure(Exception):
    """Ends `flowc build` with a one-line error (exit 1): no engine, no backend, no wheel."""


class ImageError(Exception):
    """One image could not be built or pushed; its flow is not registered."""

    def __init__(self, message: str, log_tail: list[str] | None = None) -> None:
        super().__init__(message)
        self.log_tail = log_tail or []


@dataclass(frozen=True)
class Target:
    """One generated project to build and register, as its plan decided it."""

    name: str
    spec: str
    project_name: str
    repository: str
    tag: str
    inputs_digest: str
    directory: Path
    target: str = "prefect1"  # prefect3 projects are deployed, not registered

    @property
    def image(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def registry(self) -> str | None:
        """The registry `image` names (host:port/ or domain/), else None: then it stays local."""
        return registry_of(self.repository)


def registry_of(repository: str) -> str | None:
    """Docker's rule: the first component names a registry when it has a '.' or ':' or is localhost."""
    first, slash, _ = repository.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


@dataclass
class Tally:
    built: int = 0
    up_to_date: int = 0
    pushed: int = 0
    failed: int = 0
    registered: int = 0
    skipped: int = 0
    written: int = 0
    errored: int = 0
    deployed: int = 0  # prefect3: created or updated
    unchanged: int = 0
    image_failed: set[str] = field(default_factory=set)


def build_command(
    project: Project,
    spec_paths: list[Path] | None,
    json_path: str | None,
    no_image: bool,
    no_register: bool,
    generate: Callable[..., int],
) -> int:
    """The whole `flowc build`; returns the exit code. `generate` is the command's generate pass
    (compiler.cli.run_generate), run first so the images hold what the specs say."""
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
        _error(str(failure))
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
            _error(f"{outcome.name}: deployment failed: {outcome.detail}")
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


# Progress ---------------------------------------------------------------------------------------


class Progress:
    """Per-image lines a person can follow (stderr); on a terminal the current build step spins in place."""

    def __init__(self) -> None:
        self.interactive = console.interactive()
        self.position = ""  # `[2/6] ` while the second of six images is worked on

    def say(self, text: str) -> None:
        console.info(text)

    @contextmanager
    def working(self, text: str) -> Iterator[Callable[[str], None]]:
        """Yields a function that reports the current step of a long operation."""
        if not self.interactive:
            yield lambda step: console.detail(f"    {step}")
            return
        from rich.console import Console
        from rich.markup import escape

        status_console = Console(stderr=True)
        text = self.position + text
        with status_console.status(escape(text)) as status:
            yield lambda step: status.update(escape(f"{text}: {step}"))


def _error(message: str, tail: list[str] | None = None) -> None:
    """The log's tail (if any) for context, then the one-line error."""
    _tail(tail or [])
    click.echo(f"error: {message}", err=True)


def _tail(lines: list[str]) -> None:
    if lines:
        click.echo("    ... last lines of the log:", err=True)
        for line in lines:
            click.echo(f"    | {line}", err=True)


# Images -----------------------------------------------------------------------------------------


def docker_client() -> docker.DockerClient:
    """A client for the engine DOCKER_HOST names, or a BuildFailure saying which one did not answer."""
    import docker

    host = os.environ.get("DOCKER_HOST")
    where = f"DOCKER_HOST={host}" if host else "DOCKER_HOST (not set: unix:///var/run/docker.sock)"
    try:
        client = docker.from_env(timeout=DOCKER_TIMEOUT_S)
        client.ping()
    except Exception as error:  # noqa: BLE001 - docker raises several kinds for "nobody there"
        reason = _one_line(str(error))
        raise BuildFailure(f"no Docker engine reachable at {where}: {reason} (start one, or pass --no-image)") from None
    return client


def build_images(targets: list[Target], tally: Tally, progress: Progress, *, push: bool) -> None:
    """Bring every target's image up to date (built locally; pushed where it names a registry)."""
    client = docker_client()
    wheel = WheelProvider(progress)
    try:
        for index, target in enumerate(targets, start=1):
            progress.position = f"[{index}/{len(targets)}] " if len(targets) > 1 else ""
            try:
                ensure_image(client, target, wheel, progress, tally, push=push)
            except ImageError as error:
                tally.failed += 1
                tally.image_failed.add(target.name)
                _error(str(error), error.log_tail)
    finally:
        client.close()


def ensure_image(
    client: docker.DockerClient,
    target: Target,
    wheel: WheelProvider,
    progress: Progress,
    tally: Tally,
    *,
    push: bool,
) -> None:
    registry = target.registry if push else None
    local = _local_image_matches(client, target)
    in_registry = _in_registry(client, target) if registry else None
    if local and in_registry is not False:
        tally.up_to_date += 1
        progress.say(f"{target.name}: up to date ({target.image})")
        return
    if not local and in_registry:
        tally.up_to_date += 1
        progress.say(f"{target.name}: up to date in {registry} ({target.image}); not built here")
        return
    if not local:
        build_image(client, target, wheel.get(), progress)
        tally.built += 1
    if registry:
        push_image(client, target, progress)
        tally.pushed += 1


def _local_image_matches(client: docker.DockerClient, target: Target) -> bool:
    """An image under the tag that flowc built from these inputs (a tag moved by hand does not count)."""
    import docker

    try:
        image = client.images.get(target.image)
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError as error:
        raise ImageError(f"{target.name}: cannot inspect {target.image}: {_explain(error)}") from None
    labels = image.attrs.get("Config", {}).get("Labels") or {}
    return labels.get(INPUTS_LABEL) == target.inputs_digest


def _in_registry(client: docker.DockerClient, target: Target) -> bool:
    """Whether the registry already holds the tag; an unreachable registry is an ImageError."""
    import docker

    try:
        client.images.get_registry_data(target.image)
        return True
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as error:
        text = _explain(error)
        if "manifest unknown" in text or "name unknown" in text:
            return False
        if any(sign in text for sign in UNREACHABLE_SIGNS):
            raise ImageError(f"{target.name}: registry {target.registry} is unreachable: {text}") from None
        raise ImageError(
            f"{target.name}: registry {target.registry} refused the lookup of {target.image}: {text}"
        ) from None


def build_context(directory: Path, wheel: Path) -> io.BytesIO:
    """generated/<name>/ plus wheels/<flowc wheel>, as a tar with fixed metadata."""
    buffer = io.BytesIO()
    entries = [(p.relative_to(directory).as_posix(), p) for p in sorted(directory.rglob("*")) if p.is_file()]
    entries = [(name, path) for name, path in entries if not _is_scratch(name)]
    entries.append((f"wheels/{wheel.name}", wheel))
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in entries:
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def _is_scratch(name: str) -> bool:
    return any(part.startswith(".") for part in name.split("/"))


def build_image(client: docker.DockerClient, target: Target, wheel: Path, progress: Progress) -> None:
    """Build with the legacy builder, no pull (the base exists locally) and no network."""
    import docker

    started = time.monotonic()
    progress.say(f"{target.name}: building {target.image}")
    log: list[str] = []
    dockerfile = f"{target.directory.name}/Dockerfile"
    try:
        with progress.working(f"{target.name}: building") as report:
            stream = client.api.build(
                fileobj=build_context(target.directory, wheel),
                custom_context=True,
                tag=target.image,
                rm=True,
                forcerm=True,
                pull=False,
                network_mode="none",
                decode=True,
            )
            for chunk in stream:
                for line in str(chunk.get("stream", "")).splitlines():
                    if line.strip():
                        log.append(line.rstrip())
                        if line.startswith("Step "):
                            report(_shorten(line))
                if "error" in chunk:
                    message = _one_line(str(chunk.get("error", "")))
                    raise ImageError(
                        f"{target.name}: build of {target.image} failed ({dockerfile}): {message}",
                        log[-BUILD_LOG_TAIL_LINES:],
                    )
    except docker.errors.APIError as error:
        raise ImageError(
            f"{target.name}: build of {target.image} failed ({dockerfile}): {_explain(error)}",
            log[-BUILD_LOG_TAIL_LINES:],
        ) from None
    progress.say(f"{target.name}: built {target.image} in {time.monotonic() - started:.1f}s")


def push_image(client: docker.DockerClient, target: Target, progress: Progress) -> None:
    import docker

    started = time.monotonic()
    try:
        with progress.working(f"{target.name}: pushing to {target.registry}") as report:
            for chunk in client.api.push(target.repository, tag=target.tag, stream=True, decode=True):
                if "error" in chunk:
                    message = _one_line(str(chunk["error"]))
                    raise ImageError(f"{target.name}: push of {target.image} failed: {message}")
                status = chunk.get("status")
                if status and chunk.get("id") is None:
                    report(_shorten(str(status)))
    except docker.errors.APIError as error:
        raise ImageError(f"{target.name}: push of {target.image} failed: {_explain(error)}") from None
    progress.say(f"{target.name}: pushed {target.image} in {time.monotonic() - started:.1f}s")


def _explain(error: Any) -> str:
    return _one_line(str(getattr(error, "explanation", None) or error))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _shorten(text: str, width: int = 110) -> str:
    text = _one_line(text)
    return text if len(text) <= width else text[: width - 3] + "..."


# flowc's wheel ----------------------------------------------------------------------------------


class WheelProvider:
    """flowc's own wheel, made once per run and only when an image is really built."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self._wheel: Path | None = None

    def get(self) -> Path:
        if self._wheel is None:
            self._wheel = flowc_wheel(self.progress)
        return self._wheel


def flowc_source_tree() -> Path | None:
    """The checkout flowc runs from (an editable install), or None for an installed wheel."""
    import compiler

    root = Path(compiler.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    try:
        with pyproject.open("rb") as handle:
            name = tomllib.load(handle).get("project", {}).get("name")
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return root if name == "flowc" else None


def wheel_sources(root: Path) -> list[Path]:
    """What `pip wheel` needs: pyproject.toml, the README it names, the compiler package (through
    its symlinks: compiler/templates is the repository's templates/, shipped as package data)."""
    files = [root / "pyproject.toml"]
    if (root / "README.md").is_file():
        files.append(root / "README.md")
    package = root / "compiler"
    for directory, subdirectories, names in os.walk(package, followlinks=True):
        subdirectories[:] = sorted(d for d in subdirectories if d != "__pycache__")
        for name in sorted(names):
            if not name.endswith((".pyc", ".pyo")):
                files.append(Path(directory) / name)
    return files


def flowc_wheel(progress: Progress) -> Path:
    """$FLOWC_WHEEL, else a wheel built from flowc's source tree, cached by the sources' digest."""
    explicit = os.environ.get("FLOWC_WHEEL")
    if explicit:
        wheel = Path(explicit)
        if not (wheel.is_file() and wheel.name.endswith(".whl")):
            raise BuildFailure(f"FLOWC_WHEEL={explicit} is not a wheel file")
        return wheel
    root = flowc_source_tree()
    if root is None:
        raise BuildFailure(
            "flowc is not installed from a source tree, so it cannot build its own wheel for the images; "
            "set FLOWC_WHEEL to a flowc-*.whl of this version"
        )
    # Read once: the digest names exactly the bytes that go into the wheel.
    sources = {path.relative_to(root).as_posix(): path.read_bytes() for path in wheel_sources(root)}
    digest = hashlib.sha256()
    for name, data in sources.items():
        digest.update(name.encode() + b"\0" + data + b"\0")
    target = cache_dir() / "wheels" / digest.hexdigest()[:24]
    cached = sorted(target.glob("flowc-*.whl")) if target.is_dir() else []
    if cached:
        return cached[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    progress.say(f"building flowc's wheel from {root}")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as scratch:
        source = Path(scratch) / "src"
        for name, data in sources.items():
            destination = source / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(data)
        out = Path(scratch) / "out"
        env = {**os.environ, "SOURCE_DATE_EPOCH": WHEEL_SOURCE_DATE_EPOCH, "PIP_NO_INPUT": "1"}
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)]
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=scratch)
        wheels = sorted(out.glob("flowc-*.whl"))
        if result.returncode != 0 or not wheels:
            _tail((result.stdout + result.stderr).splitlines()[-BUILD_LOG_TAIL_LINES:])
            raise BuildFailure(f"`pip wheel` could not build flowc's wheel from {root} (exit {result.returncode})")
        try:
            os.rename(out, target)
        except OSError:
            if not sorted(target.glob("flowc-*.whl")):  # not a concurrent build that won the race
                raise
    return sorted(target.glob("flowc-*.whl"))[0]


# Registration -----------------------------------------------------------------------------------


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
            _error(str(error))
        except Exception as error:  # noqa: BLE001 - Prefect's serializers raise many kinds
            tally.errored += 1
            _error(f"{target.name}: cannot serialize the flow: {_one_line(str(error))}")


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
            f"cannot reach the Prefect backend ({name}) at {_backend_url()}: {_one_line(str(error))} "
            f"({hint}; or pass --no-register or --json FILE)"
        ) from None
    for target, serialized in _serialized_flows(targets, tally):
        try:
            _, created = backend.project_id(target.project_name)
            if created:
                progress.say(f"created project {target.project_name!r}")
            outcome = backend.register(serialized, target.project_name)
        except BackendUnreachable as error:
            raise BuildFailure(f"lost the Prefect backend at {_backend_url()}: {_one_line(str(error))}") from None
        except Exception as error:  # noqa: BLE001 - ClientError and friends: this flow failed
            tally.errored += 1
            _error(f"{target.name}: registration in {target.project_name!r} failed: {_one_line(str(error))}")
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
