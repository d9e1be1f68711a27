"""flowc's side of the fork server (compiler.runtime.forkserver): starting children, source servers.

`ForkServer` starts the server from the child interpreter; it imports Prefect and flowc's runtime
once and forks a fresh process per child, which imports the child's source itself. Once a child
of a source ended successfully, flowc may ask the server for a *source server* of that source: a
fork that imports the source once and then forks the children of that source with the module
already imported. A child is forked from one only when the source server was asked for after
every run upstream of the child ended (`imports_after`): its import then read what the child's
own import, at its start, would have read (DESIGN.md: a child module is imported when that
child starts, not before its parents produced their data). What the import printed is replayed
at the start of each such child's output. A source server that cannot import (or prints more
than a MiB) is given up, and that source's children import it themselves.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KILL_GRACE_S = float(os.environ.get("FLOWC_KILL_GRACE", "5"))
# `off` (the default): every child imports its source itself; `on`: source servers.
SOURCE_SERVERS_ENV = "FLOWC_SOURCE_SERVERS"
SOURCE_WAIT_S = 2.0  # how long a child waits for a source server still importing its source


class LaunchError(Exception):
    """The child interpreter could not start a child; the message says why."""


def kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class ServerLink:
    """flowc's end of one server's control socket (SOCK_SEQPACKET, one JSON message each)."""

    def __init__(self, control: socket.socket, name: str, on_gone: Callable[[ServerLink], str]) -> None:
        self.control = control
        self.ready = threading.Event()
        self.failed: str | None = None  # why it cannot start children (set once it is gone)
        self._on_gone = on_gone
        self._lock = threading.Lock()
        self._pending: dict[int, list[Any]] = {}  # id -> [event, pid]
        self._exits: dict[int, list[Any]] = {}  # id -> [on_exit, pid]
        self._next = 0
        self.reader = threading.Thread(target=self._read, name=name, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.control.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                break
            message = json.loads(data)
            op = message.get("op")
            if op == "ready":
                self.ready.set()
            elif op == "failed":
                self.failed = f"cannot import the source: {message.get('error')}"
            elif op == "started":
                with self._lock:
                    waiting = self._pending.get(message["id"])
                    if message["id"] in self._exits:
                        self._exits[message["id"]][1] = message["pid"]
                if waiting is not None:
                    waiting[1] = message["pid"]
                    waiting[0].set()
            elif op == "exited":
                with self._lock:
                    exit_entry = self._exits.pop(message["id"], None)
                if exit_entry is not None:
                    exit_entry[0](os.waitstatus_to_exitcode(message["status"]))
        # The server is gone: nothing more starts, and no exit will be reported for the rest.
        self.failed = self._on_gone(self) if self.failed is None else self.failed
        self.ready.set()
        with self._lock:
            pending, self._pending = self._pending, {}
            exits, self._exits = self._exits, {}
        for waiting in pending.values():
            waiting[0].set()
        for on_exit, pid in exits.values():
            if pid is not None:
                kill_group(pid, signal.SIGKILL)  # its server is gone: nothing else would end it
            on_exit(-int(signal.SIGKILL))

    def send(self, message: dict[str, Any], fds: list[int]) -> None:
        socket.send_fds(self.control, [json.dumps(message).encode("utf-8")], fds)

    def next_id(self) -> int:
        with self._lock:
            self._next += 1
            return self._next

    def launch(self, request: dict[str, Any], output_fd: int, channel_fd: int, on_exit: Callable[[int], None]) -> int:
        event = threading.Event()
        ident = self.next_id()
        waiting: list[Any] = [event, None]
        with self._lock:
            self._pending[ident] = waiting
            self._exits[ident] = [on_exit, None]
        try:
            self.send({"op": "start", "id": ident, "request": request}, [output_fd, channel_fd])
        except OSError as error:
            with self._lock:
                self._pending.pop(ident, None)
                self._exits.pop(ident, None)
            raise LaunchError(f"stopped: {error}") from None
        event.wait()
        with self._lock:
            self._pending.pop(ident, None)
        if waiting[1] is None:
            with self._lock:
                self._exits.pop(ident, None)
            raise LaunchError(self.failed or "stopped")
        return int(waiting[1])

    def close(self) -> None:
        try:
            self.control.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.control.close()


@dataclass
class SourceServer:
    """A fork of the server that imported one source, asked for at `asked` (perf_counter)."""

    source: str
    asked: float
    link: ServerLink
    retired: bool = field(default=False)


class ForkServer:
    """One warm interpreter that forks a process per child (see compiler.runtime.forkserver)."""

    READY_TIMEOUT_S = 120.0

    def __init__(self, python: str, cwd: Path, env: dict[str, str]) -> None:
        self.python = python
        self._failed: str | None = None
        self._stderr: list[str] = []
        self._lock = threading.Lock()
        self._sources: dict[str, SourceServer] = {}  # the newest ready one per source
        self._asked: dict[str, SourceServer] = {}  # the newest asked for, ready or not
        self._given_up: set[str] = set()
        self._all_sources: list[SourceServer] = []
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._process: subprocess.Popen[bytes] | None = subprocess.Popen(
                [python, "-m", "compiler.runtime.forkserver", str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(theirs.fileno(),),
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        except OSError as error:
            self._failed = f"cannot start the child interpreter {python}: {error}"
            self._process = None
            ours.close()
            self._main: ServerLink | None = None
            return
        finally:
            theirs.close()
        self._stderr_thread = threading.Thread(target=self._read_stderr, name="flowc-forkserver-stderr", daemon=True)
        self._stderr_thread.start()
        self._main = ServerLink(ours, "flowc-forkserver", self._main_gone)

    def _read_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        for raw in self._process.stderr:
            if len(self._stderr) < 200:
                self._stderr.append(raw.decode("utf-8", "replace").rstrip())

    def _main_gone(self, _: ServerLink) -> str:
        if self._process is not None:
            self._process.wait()
            self._stderr_thread.join(timeout=5.0)
        if self._stderr and self._stderr[-1].startswith(("ModuleNotFoundError", "ImportError")):
            why = self._stderr[-1]
        else:
            why = " | ".join(self._stderr[-3:]) or "it exited"
        if "No module named 'compiler" in why:
            why += " (flowc's runtime is not installed in that environment)"
        self._failed = self._failed or f"the child interpreter {self.python} stopped: {why}"
        return self._failed

    def wait_ready(self) -> None:
        if self._main is None or not self._main.ready.wait(self.READY_TIMEOUT_S) or self._main.failed:
            raise LaunchError(self._failed or f"the child interpreter {self.python} did not start in time")

    def launch(
        self,
        request: dict[str, Any],
        output_fd: int,
        channel_fd: int,
        on_exit: Callable[[int], None],
        imports_after: float | None = None,
    ) -> int:
        """Start a child; from a source server of its source asked for after `imports_after`
        (every run upstream of it ended by then), else from the main server."""
        self.wait_ready()
        assert self._main is not None
        server = self._source_server(request["source"], imports_after)
        if server is not None:
            try:
                return server.link.launch(request, output_fd, channel_fd, on_exit)
            except LaunchError:
                pass  # it is gone: the main server starts the child
        try:
            return self._main.launch(request, output_fd, channel_fd, on_exit)
        except LaunchError:
            raise LaunchError(self._failed or f"the child interpreter {self.python} stopped") from None

    def _source_server(self, source: str, imports_after: float | None) -> SourceServer | None:
        """The newest source server of `source` asked for after `imports_after`, once it is ready
        (waiting a little for one still importing: the child would import the source as long)."""
        if imports_after is None:
            return None
        for server in (self._asked.get(source), self._sources.get(source)):
            if server is None or server.asked <= imports_after or server.link.failed:
                continue
            if server.link.ready.wait(SOURCE_WAIT_S) and not server.link.failed:
                return server
        return None

    def prepare_source(self, source: str, root: str, flow_name: str, after: float) -> None:
        """Ask for a source server of `source` unless one was asked for after `after`."""
        if self._main is None or not self._main.ready.is_set() or self._main.failed:
            return
        with self._lock:
            newest = self._asked.get(source)
            if source in self._given_up or (newest is not None and newest.asked > after):
                return
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            server = SourceServer(source, time.perf_counter(), ServerLink(ours, "flowc-source-server", self._source_gone))
            self._asked[source] = server
            self._all_sources.append(server)
        try:
            message = {"op": "source", "id": self._main.next_id(), "source": source, "root": root, "flow_name": flow_name}
            self._main.send(message, [theirs.fileno()])
        except OSError:
            server.link.close()
        finally:
            theirs.close()
        threading.Thread(target=self._when_ready, args=(server,), name="flowc-source-ready", daemon=True).start()

    def _when_ready(self, server: SourceServer) -> None:
        server.link.ready.wait(self.READY_TIMEOUT_S)
        with self._lock:
            if server.link.failed or not server.link.ready.is_set():
                if "cannot import" in (server.link.failed or ""):
                    self._given_up.add(server.source)
                return
            previous = self._sources.get(server.source)
            if previous is not None and previous.asked > server.asked:
                previous, server = server, previous  # an older one became ready last
            self._sources[server.source] = server
        if previous is not None and not previous.retired:
            previous.retired = True
            try:
                previous.link.send({"op": "retire"}, [])  # it ends once its children did
            except OSError:
                pass

    def _source_gone(self, link: ServerLink) -> str:
        with self._lock:
            for source, server in list(self._sources.items()):
                if server.link is link:
                    del self._sources[source]
        return "its source server ended"

    def close(self) -> None:
        """End the source servers (each ends its children), then the server: it kills whatever
        is left and exits (killed at once while it is still importing: no child exists before
        it is ready)."""
        if self._process is not None and self._main is not None and not self._main.ready.is_set():
            kill_group(self._process.pid, signal.SIGKILL)
        with self._lock:
            sources = list(self._all_sources)
        for server in sources:
            server.link.close()
        for server in sources:
            server.link.reader.join(timeout=KILL_GRACE_S + 5)
        if self._main is not None:
            self._main.close()
        if self._process is not None:
            try:
                self._process.wait(timeout=KILL_GRACE_S + 5)
            except subprocess.TimeoutExpired:
                kill_group(self._process.pid, signal.SIGKILL)
                self._process.wait()
