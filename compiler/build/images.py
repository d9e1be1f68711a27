"""Images: build each generated project with the docker SDK (network off), tag it with its inputs
digest, push it; an image already under its tag is up to date."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compiler.build.common import (
    BUILD_LOG_TAIL_LINES,
    DOCKER_TIMEOUT_S,
    INPUTS_LABEL,
    UNREACHABLE_SIGNS,
    BuildFailure,
    ImageError,
    Progress,
    Tally,
    Target,
    one_line,
    report_error,
)
from compiler.build.wheel import WheelProvider

if TYPE_CHECKING:
    import docker


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
        reason = one_line(str(error))
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
                report_error(str(error), error.log_tail)
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
                    message = one_line(str(chunk.get("error", "")))
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
                    message = one_line(str(chunk["error"]))
                    raise ImageError(f"{target.name}: push of {target.image} failed: {message}")
                status = chunk.get("status")
                if status and chunk.get("id") is None:
                    report(_shorten(str(status)))
    except docker.errors.APIError as error:
        raise ImageError(f"{target.name}: push of {target.image} failed: {_explain(error)}") from None
    progress.say(f"{target.name}: pushed {target.image} in {time.monotonic() - started:.1f}s")


def _explain(error: Any) -> str:
    return one_line(str(getattr(error, "explanation", None) or error))


def _shorten(text: str, width: int = 110) -> str:
    text = one_line(text)
    return text if len(text) <= width else text[: width - 3] + "..."
