"""Child processes of `flowc run`: starting, watching, bounding in time, stopping.

Every child flow run is a process of its own, in a session and process group of its own, from
the project's child interpreter (`Project.python`). Two launchers start them:
- `ForkServer` (the default): one warm server per run (`compiler.runtime.forkserver`) imports
  Prefect once and forks a fresh process per child; a child starts in a few milliseconds.
- `Spawner` (`FLOWC_CHILD_START=spawn`): `python -m compiler.runtime.child` per child; each pays
  the interpreter's start and Prefect's import (~0.5-1 s).
A child's stdout and stderr share one pipe; `Supervisor` copies each line to the child's log
(`.flowc/runs/<run-id>/<label>.log`) and, prefixed with its label, to flowc's stderr (Prefect's
own INFO and DEBUG records only to the log, unless PREFECT__LOGGING__LEVEL is set). Timeouts
and stops end a child's whole process group: SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from compiler.local.forkclient import KILL_GRACE_S, SOURCE_SERVERS_ENV, ForkServer, LaunchError, kill_group

START_METHODS = ("fork", "spawn")
LOG_NAME_MAX = 120  # characters of a log file's name from its label (a point's values can be long)
_PREFECT_CHATTER = re.compile(rb"^\[[^\]]*\] (?:DEBUG|INFO) - prefect[.\w]* \| ")


def describe_duration(seconds: float) -> str:
    """`2h`, `5m`, `30s`, `1.5s`: as a spec writes durations."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def describe_status(status: int) -> str:
    """A wait status (as `os.waitstatus_to_exitcode` gives it) in words."""
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"killed by {name}"
    return f"exited with status {status}"


@dataclass
class ChildProcess:
    """One child's process as flowc sees it."""

    label: str
    log_path: Path
    pid: int | None = None
    started_at: datetime | None = None
    started: float | None = None
    ended: float | None = None
    exit_status: int | None = None  # >= 0 an exit status, < 0 the signal that ended it
    stop_reason: str | None = None  # set when flowc stopped it (timeout, interrupt)
    launch_error: str | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)
    _exited: threading.Event = field(default_factory=threading.Event, repr=False)
    _drained: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def duration_s(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended if self.ended is not None else time.perf_counter()) - self.started

    def abnormal_end(self) -> str | None:
        """Why the process ended without a clean exit, in words; None for status 0."""
        if self.launch_error:
            return self.launch_error
        if self.stop_reason:
            return self.stop_reason
        if self.exit_status is None:
            return "did not finish"
        if self.exit_status != 0:
            return describe_status(self.exit_status)
        return None


class OutputSink:
    """flowc's stderr, shared by every child's output (whole lines, prefixed, one writer at a time)."""

    def __init__(self, stream: IO[bytes] | None = None, show_prefect_info: bool | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr.buffer
        self._lock = threading.Lock()
        if show_prefect_info is None:
            show_prefect_info = "PREFECT__LOGGING__LEVEL" in os.environ
        self._show_info = show_prefect_info

    def line(self, label: bytes, line: bytes) -> None:
        if not self._show_info and _PREFECT_CHATTER.match(line):
            return
        if not line.endswith(b"\n"):
            line += b"\n"
        with self._lock:
            try:
                self._stream.write(b"[" + label + b"] " + line)
                self._stream.flush()
            except (OSError, ValueError):  # a closed stderr must not stop the run
                pass

    def text(self, text: str) -> None:
        with self._lock:
            try:
                self._stream.write(text.encode("utf-8", "replace"))
                self._stream.flush()
            except (OSError, ValueError):
                pass


def _pump(child: ChildProcess, read_fd: int, sink: OutputSink) -> None:
    """Copy a child's output to its log and to flowc's stderr until every writer closed the pipe."""
    label = child.label.encode("utf-8", "replace")
    try:
        with os.fdopen(read_fd, "rb", buffering=0) as pipe, open(child.log_path, "ab") as log:
            reader = _Lines(pipe)
            for line in reader:
                log.write(line)
                log.flush()
                sink.line(label, line)
    finally:
        child._drained.set()


class _Lines:
    """Lines of a pipe as they arrive (no read-ahead that would hold back a child's last line)."""

    def __init__(self, pipe: Any) -> None:
        self._pipe = pipe
        self._buffer = b""

    def __iter__(self) -> Any:
        while True:
            chunk = self._pipe.read(65536)
            if not chunk:
                if self._buffer:
                    yield self._buffer
                return
            self._buffer += chunk
            *lines, self._buffer = self._buffer.split(b"\n")
            for line in lines:
                yield line + b"\n"


# Launchers -----------------------------------------------------------------------------------------


class Spawner:
    """A new interpreter per child: `python -m compiler.runtime.child REQUEST CHANNEL_FD`."""

    def __init__(self, python: str, cwd: Path, env: dict[str, str]) -> None:
        self.python, self.cwd, self.env = python, cwd, env

    def wait_ready(self) -> None:
        pass

    def launch(
        self,
        request: dict[str, Any],
        output_fd: int,
        channel_fd: int,
        on_exit: Callable[[int], None],
        imports_after: float | None = None,
    ) -> int:
        request_file = Path(request["report_file"]).with_suffix(".request.json")
        request_file.write_text(json.dumps(request), encoding="utf-8")
        try:
            process = subprocess.Popen(
                [self.python, "-m", "compiler.runtime.child", str(request_file), str(channel_fd)],
                stdin=subprocess.DEVNULL,
                stdout=output_fd,
                stderr=output_fd,
                pass_fds=(channel_fd,),
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,
            )
        except OSError as error:
            raise LaunchError(f"cannot start the child interpreter {self.python}: {error}") from None

        def wait() -> None:
            status = process.wait()
            kill_group(process.pid, signal.SIGKILL)  # what it left running in its group
            on_exit(status)

        threading.Thread(target=wait, name=f"flowc-wait-{process.pid}", daemon=True).start()
        return process.pid

    def close(self) -> None:
        pass


def start_launcher(python: str, cwd: Path, method: str | None = None) -> ForkServer | Spawner:
    """The launcher of a run's children (`FLOWC_CHILD_START`, default fork). A fork server starts
    importing Prefect at once, so `flowc run` starts it before its own checks and imports."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONSTARTUP", None)
    method = method or os.environ.get("FLOWC_CHILD_START", "fork")
    if method not in START_METHODS:
        raise ValueError(f"FLOWC_CHILD_START={method!r}: expected one of {', '.join(START_METHODS)}")
    return ForkServer(python, cwd, env) if method == "fork" else Spawner(python, cwd, env)


# The supervisor -----------------------------------------------------------------------------------


class Supervisor:
    """Starts children, bounds them in time, stops them; nothing it started outlives `close()`."""

    def __init__(
        self,
        python: str,
        run_dir: Path,
        cwd: Path,
        sink: OutputSink,
        method: str | None = None,
        launcher: ForkServer | Spawner | None = None,
    ) -> None:
        """`launcher`: one `start_launcher` already started (its interpreter is then `python`)."""
        self.python = python
        self.run_dir = run_dir
        self.sink = sink
        self._launcher: ForkServer | Spawner = launcher or start_launcher(python, cwd, method)
        self.method = "fork" if isinstance(self._launcher, ForkServer) else "spawn"
        self._lock = threading.Lock()
        self._children: list[ChildProcess] = []
        self._stopping: str | None = None
        self._log_names: set[str] = set()
        # Off by default: at 1,000 scan points, two runs with them on lost a few points' children
        # to SIGKILL (README, "Source servers"); opt in with FLOWC_SOURCE_SERVERS=on.
        servers = os.environ.get(SOURCE_SERVERS_ENV, "off")
        if servers not in ("on", "off"):
            raise ValueError(f"{SOURCE_SERVERS_ENV}={servers!r}: expected on or off")
        self._source_servers = servers == "on"

    @property
    def stopping(self) -> str | None:
        """Why no new child may start (the run's timeout passed, or it was interrupted)."""
        return self._stopping

    def log_path(self, label: str) -> Path:
        base = re.sub(r"[^A-Za-z0-9_.\[\]=,-]+", ".", label).strip(".")[:LOG_NAME_MAX] or "child"
        with self._lock:
            name, n = base, 1
            while name in self._log_names:
                n += 1
                name = f"{base}-{n}"
            self._log_names.add(name)
        return self.run_dir / f"{name}.log"

    def start(
        self,
        label: str,
        log_path: Path,
        request: dict[str, Any],
        channel_fd: int,
        timeout_s: float | None,
        on_done: Callable[[ChildProcess], None],
        imports_after: float | None = None,
    ) -> ChildProcess:
        """Start a child; `on_done` runs (on another thread) once it exited and its output is read.
        `imports_after`: when every run upstream of it had ended (perf_counter), if it is a step's
        run (a fork server may then start it with its source imported since)."""
        child = ChildProcess(label=label, log_path=log_path)
        if self._stopping:
            raise LaunchError(f"not started: {self._stopping}")
        read_fd, write_fd = os.pipe()
        threading.Thread(target=_pump, args=(child, read_fd, self.sink), name=f"flowc-out-{label}", daemon=True).start()

        def exited(status: int) -> None:
            child.ended = time.perf_counter()
            child.exit_status = status
            child._exited.set()
            threading.Thread(target=finish, name=f"flowc-done-{label}", daemon=True).start()

        def finish() -> None:
            # A grandchild that left the group may hold the pipe open: do not wait for it forever.
            child._drained.wait(timeout=5.0)
            child.done.set()
            on_done(child)

        try:
            self._launcher.wait_ready()
            child.started_at = datetime.now(timezone.utc)
            child.started = time.perf_counter()
            with self._lock:
                self._children.append(child)
            child.pid = self._launcher.launch(request, write_fd, channel_fd, exited, imports_after)
        except LaunchError as error:
            child.launch_error = str(error)
            child.ended = time.perf_counter()
            os.close(write_fd)
            child._drained.wait(timeout=1.0)
            child.done.set()
            on_done(child)
            return child
        finally:
            if child.pid is not None:
                os.close(write_fd)
        if timeout_s is not None:
            timer = threading.Timer(timeout_s, self.stop, (child, f"timed out after {describe_duration(timeout_s)}"))
            timer.daemon = True
            timer.start()
        if self._stopping:  # stopped while it was starting
            self.stop(child, self._stopping)
        return child

    def prepare_source(self, source: str, root: str, flow_name: str, after: float) -> None:
        """Let later children of `source` start with it imported (compiler.local.forkclient)."""
        if self._source_servers and isinstance(self._launcher, ForkServer) and not self._stopping:
            self._launcher.prepare_source(source, root, flow_name, after)

    def stop(self, child: ChildProcess, reason: str) -> None:
        """End a child's process group: SIGTERM, then SIGKILL after the grace period."""
        if child.done.is_set() or child._exited.is_set() or child.pid is None:
            return
        if child.stop_reason is None:
            child.stop_reason = reason
        kill_group(child.pid, signal.SIGTERM)

        def escalate() -> None:
            if not child._exited.wait(KILL_GRACE_S):
                kill_group(child.pid or 0, signal.SIGKILL)

        threading.Thread(target=escalate, name=f"flowc-kill-{child.label}", daemon=True).start()

    def stop_all(self, reason: str) -> None:
        """No child starts any more; every running one is stopped with `reason`."""
        with self._lock:
            if self._stopping is None:
                self._stopping = reason
            children = list(self._children)
        for child in children:
            self.stop(child, reason)

    def kill_all(self) -> None:
        with self._lock:
            children = list(self._children)
        for child in children:
            if child.pid is not None and not child._exited.is_set():
                kill_group(child.pid, signal.SIGKILL)

    def close(self) -> None:
        """Stop whatever still runs, wait for every child, then end the launcher."""
        self.stop_all(self._stopping or "stopped: the composite run ended")
        with self._lock:
            children = list(self._children)
        for child in children:
            if child.pid is not None:
                child.done.wait(KILL_GRACE_S + 10)
        self._launcher.close()
