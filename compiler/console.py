"""How flowc talks to people: `-q`/`-v`, `--color`, and one rule for the two streams.

stdout carries only what a command produces (a diff, a graph, a schema, a JSON document), so it
can be piped into `jq`, `dot` or a file; everything said to a person (progress, summaries, notes,
errors) goes to stderr. `-q` silences what is said on success, `-v` adds detail; errors always print.
Colour follows `--color`, then NO_COLOR / FORCE_COLOR (https://no-color.org), then whether the
stream is a terminal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

import click

COLOR_CHOICES = ("auto", "always", "never")


@dataclass
class Settings:
    quiet: bool = False
    verbose: int = 0
    color: str = "auto"


SETTINGS = Settings()


def configure(*, quiet: bool | None = None, verbose: int | None = None, color: str | None = None) -> None:
    """Set by the common options of every command (see compiler.cli.FlowcGroup)."""
    if quiet is not None:
        SETTINGS.quiet = quiet
    if verbose is not None:
        SETTINGS.verbose = verbose
    if color is not None:
        SETTINGS.color = color


def quiet() -> bool:
    return SETTINGS.quiet


def verbose() -> bool:
    """-v, unless -q was given too (quiet wins: it is the one scripts rely on)."""
    return SETTINGS.verbose > 0 and not SETTINGS.quiet


def use_color(stream: IO[Any] | None = None) -> bool:
    """Whether to colour what goes to `stream` (default stdout)."""
    if SETTINGS.color != "auto":
        return SETTINGS.color == "always"
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR", "") not in ("", "0", "false"):
        return True
    stream = stream or sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def interactive() -> bool:
    """A person watches stderr (progress bars and live lines are drawn only then, never under -q)."""
    try:
        return not quiet() and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def style(text: str, stream: IO[Any] | None = None, **styles: Any) -> str:
    """`text` with ANSI styles when `stream` is coloured, else unchanged."""
    return click.style(text, **styles) if use_color(stream) else text


def info(text: str, **styles: Any) -> None:
    """What a person wants to know on success (summaries, `wrote ...`): stderr, silenced by -q."""
    if not quiet():
        _err(text, **styles)


def detail(text: str) -> None:
    """Only with -v."""
    if verbose():
        _err(text, dim=True)


def note(text: str) -> None:
    """A note worth reading even on success (stderr; silenced by -q)."""
    if not quiet():
        _err(f"note: {text}", fg="cyan")


def error(text: str) -> None:
    """A problem: stderr, always (also under -q)."""
    _err(text, fg="red")


def out(text: str, nl: bool = True) -> None:
    """The command's product: stdout, never coloured unless asked for by the caller's styling."""
    click.echo(text, nl=nl, color=use_color(sys.stdout))


def _err(text: str, **styles: Any) -> None:
    colored = use_color(sys.stderr)
    click.echo(click.style(text, **styles) if colored and styles else text, err=True, color=colored)


PROGRESS_MIN = 10  # fewer items finish before a bar would be worth drawing


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int], Callable[[], None]]]:
    """Yields `start(total) -> tick`: a bar on stderr when a person watches and the work is long.

    The bar refreshes only on ticks (no refresh thread), so `generate` can still fork its
    workers, which it does only while it is the process's only thread.
    """
    bars: list[Any] = []

    def start(total: int) -> Callable[[], None]:
        if total < PROGRESS_MIN or not interactive():
            return lambda: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(
            TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=Console(stderr=True), transient=True, auto_refresh=False,
        )
        bar.start()
        task = bar.add_task(label, total=total)
        bars.append(bar)

        def tick() -> None:
            bar.advance(task)
            bar.refresh()

        return tick

    try:
        yield start
    finally:
        for bar in bars:
            bar.stop()


def rich_stderr(*, silent_when_quiet: bool = True) -> Any:
    """A rich Console on stderr that follows -q and --color (NO_COLOR, FORCE_COLOR)."""
    from rich.console import Console

    coloured = use_color(sys.stderr)
    return Console(
        stderr=True,
        highlight=False,
        soft_wrap=True,
        quiet=quiet() and silent_when_quiet,
        no_color=not coloured,
        force_terminal=True if SETTINGS.color == "always" or (coloured and not sys.stderr.isatty()) else None,
    )
