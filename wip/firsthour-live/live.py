"""A live line under `flowc run`'s progress on a terminal: which children are running, for how long.

A child that prints nothing for minutes (a simulation) otherwise looks like a hang. The line is
drawn only when a person watches stderr (not under -q, not in a pipe) and is redrawn twice a
second by rich; the start and end lines of `Progress` print above it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from compiler import console
from compiler.local.summary import Progress

REFRESH_PER_S = 2


class LiveProgress(Progress):
    """Progress plus the set of running children, shown as one status line while any runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._running: dict[str, float] = {}
        self._running_lock = threading.Lock()

    def run_started(self, run: Any) -> None:
        super().run_started(run)
        with self._running_lock:
            self._running[self.label(run)] = time.perf_counter()

    def run_finished(self, run: Any) -> None:
        super().run_finished(run)
        with self._running_lock:
            self._running.pop(self.label(run), None)

    def child_stream(self) -> Any:
        """Where children's output lines go: nowhere under -q (their logs under .flowc/runs/ keep
        them), above the live line on a terminal, else flowc's stderr (None: OutputSink's default)."""
        if console.quiet():
            return _Discard()
        if console.interactive():
            return _ConsoleBytes(self.console)
        return None

    def status_text(self) -> str:
        """`running: impact 12s, analysis 3s` (longest first), or what the composite is doing."""
        now = time.perf_counter()
        with self._running_lock:
            running = sorted(self._running.items(), key=lambda item: item[1])
        if not running:
            return "waiting for the next child to start"
        shown = ", ".join(f"{label} {now - started:.0f}s" for label, started in running[:6])
        more = f" and {len(running) - 6} more" if len(running) > 6 else ""
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
    """A bytes stream printing through a rich Console, so lines land above its live line."""

    def __init__(self, target: Any) -> None:
        self.target = target

    def write(self, data: bytes) -> int:
        self.target.print(data.decode("utf-8", "replace"), end="", markup=False, highlight=False, soft_wrap=True)
        return len(data)

    def flush(self) -> None:
        pass
