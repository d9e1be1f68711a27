"""A live line under `flowc run`'s progress on a terminal: which children are running, for how long.

A child that prints nothing for minutes (a simulation) otherwise looks like a hang. The line is
drawn only when a person watches stderr (not under -q, not in a pipe) and is redrawn twice a
second by rich; the start and end lines of `Progress`, and the children's own output, print above it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from compiler import console
from compiler.local.summary import Progress

if TYPE_CHECKING:
    from rich.console import Console

    from compiler.local.backend import ChildRun

REFRESH_PER_S = 2
SHOWN = 6  # children named on the line; the rest are counted


class LiveProgress(Progress):
    """Progress that also knows which children run now, for the live line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._running: dict[int, tuple[str, float]] = {}  # by run identity: scan points share a label
        self._running_lock = threading.Lock()

    def run_started(self, run: ChildRun) -> None:
        super().run_started(run)
        with self._running_lock:
            self._running[id(run)] = (self.label(run), time.perf_counter())

    def run_finished(self, run: ChildRun) -> None:
        super().run_finished(run)
        with self._running_lock:
            self._running.pop(id(run), None)

    def child_stream(self) -> IO[bytes] | None:
        """Where the children's output lines go: nowhere under -q (their logs under .flowc/runs/
        keep them), through the console on a terminal (above the live line), else None (stderr)."""
        if console.quiet():
            return _Discard()
        if console.interactive():
            return _ConsoleBytes(self.console)
        return None

    def status_text(self) -> str:
        """`running: impact 12s, analysis 3s` (longest-running first)."""
        now = time.perf_counter()
        with self._running_lock:
            running = sorted(self._running.values(), key=lambda item: item[1])
        if not running:
            return "waiting for the next child to start"
        shown = ", ".join(f"{label} {now - started:.0f}s" for label, started in running[:SHOWN])
        more = f" and {len(running) - SHOWN} more" if len(running) > SHOWN else ""
        return f"running: {shown}{more}"


@contextmanager
def live_line(progress: Progress) -> Iterator[None]:
    """Show `progress.status_text()` as a live line while the body runs (only on a terminal)."""
    if not isinstance(progress, LiveProgress) or not console.interactive():
        yield
        return
    from rich.markup import escape

    stop = threading.Event()
    with progress.console.status(escape(progress.status_text())) as status:

        def refresh() -> None:
            while not stop.wait(1 / REFRESH_PER_S):
                status.update(escape(progress.status_text()))

        updater = threading.Thread(target=refresh, name="flowc-live-line", daemon=True)
        updater.start()
        try:
            yield
        finally:
            stop.set()
            updater.join()


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass


class _ConsoleBytes:
    """A bytes stream printing through a rich Console, so the lines land above its live line."""

    def __init__(self, target: Console) -> None:
        self.target = target

    def write(self, data: bytes) -> int:
        text = data.decode("utf-8", "replace")
        self.target.print(text, end="", markup=False, highlight=False, soft_wrap=True)
        return len(data)

    def flush(self) -> None:
        pass
