"""What every part of `flowc build` shares: the targets, the tally, progress lines and errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import click

from compiler import console

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


# Progress and errors ---------------------------------------------------------------------------------------


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


def report_error(message: str, tail: list[str] | None = None) -> None:
    """The log's tail (if any) for context, then the one-line error."""
    show_tail(tail or [])
    click.echo(f"error: {message}", err=True)


def show_tail(lines: list[str]) -> None:
    if lines:
        click.echo("    ... last lines of the log:", err=True)
        for line in lines:
            click.echo(f"    | {line}", err=True)


def one_line(text: str) -> str:
    return " ".join(text.split())
