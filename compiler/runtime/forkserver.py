"""A warm server that forks a fresh process for every child flow run of `flowc run`.

`python -m compiler.runtime.forkserver FD`, started by flowc from the child interpreter in a
session of its own. It imports Prefect and flowc's runtime once (most of a child's start-up),
never a child's source; then, for each request on the control socket FD (a SOCK_SEQPACKET
socket: one JSON message each, with the child's output pipe and channel attached as file
descriptors), it forks. The fork starts a session and process group of its own, puts its stdout
and stderr on the output pipe, runs `compiler.runtime.child.run_request` and exits with the
child's status. The server reports `started` (pid) and `exited` (raw wait status) back, kills
whatever a finished child left in its process group, and when flowc goes away (end of file on
the control socket) kills every child's group and exits.
Single-threaded, so forking is safe. Python 3.9-3.11, prefect 1.4.1 and the standard library only.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import tempfile
import time
import traceback
from typing import Any, Dict, List

MAX_MESSAGE = 1 << 16
MAX_PREFACE = 1 << 20  # bytes a source may print at import and still be imported once
SOURCE_SERVER_GRACE_S = 3.0


def _send(control: socket.socket, message: Dict[str, Any]) -> None:
    try:
        control.send(json.dumps(message).encode("utf-8"))
    except OSError:  # flowc is gone; the loop sees the end of file next
        pass


def _detach(control: socket.socket, wakeup: List[int]) -> None:
    """In a fork: a session of its own, default signals, none of the server's descriptors."""
    os.setsid()
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    control.close()
    for fd in wakeup:
        os.close(fd)


def _run_forked(
    control: socket.socket, wakeup: List[int], request: Dict[str, Any], fds: List[int], preface: bytes
) -> None:
    """In the fork: become the child flow run; never return."""
    code = 1
    try:
        _detach(control, wakeup)
        output, channel = fds[0], (fds[1] if len(fds) > 1 else None)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(output)
        if preface:  # what importing the source printed, in the server that imported it
            os.write(1, preface)
        from compiler.runtime.child import exit_code, flush_output, run_request

        try:
            run_request(request, channel)
            code = 0
        except SystemExit as error:
            code = exit_code(error)
        except BaseException:  # noqa: BLE001 - whatever it is, the child ends with a status
            traceback.print_exc()
            code = 1
        finally:
            flush_output()
    finally:
        os._exit(code)


def _become_source_server(control: socket.socket, wakeup: List[int], message: Dict[str, Any], fds: List[int]) -> None:
    """In the fork: import one child source, then serve forks of this process; never return.

    flowc asks for one only after every step upstream of the children it will serve ended, so
    the import reads what a child's own import would read. What the import prints is kept and
    replayed at the start of each child's output."""
    code = 0
    own = socket.socket(fileno=fds[0])
    try:
        _detach(control, wakeup)
        for fd in fds[1:]:
            os.close(fd)
        from compiler.runtime import child

        key = (message["source"], message.get("root") or "", message["flow_name"])
        with tempfile.TemporaryFile() as captured:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(captured.fileno(), 1)
            os.dup2(captured.fileno(), 2)
            try:
                flow = child.load_flow(*key)
                error = None
            except BaseException as failure:  # noqa: BLE001 - SystemExit at import included
                flow, error = None, f"{type(failure).__name__}: {failure}"
            child.flush_output()
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            os.close(null)
            captured.seek(0)
            preface = captured.read(MAX_PREFACE + 1)
        if flow is None or len(preface) > MAX_PREFACE:
            _send(own, {"op": "failed", "error": error or "its import printed too much to replay"})
            return
        child.PRELOADED[key] = flow
        serve(own, preface, of_source=True)
    except BaseException:  # noqa: BLE001 - flowc sees the end of file and forks from the main server
        code = 1
    finally:
        os._exit(code)


def _reap(control: socket.socket, children: Dict[int, Any]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        ident = children.pop(pid, None)
        try:
            os.killpg(pid, signal.SIGKILL)  # what the child left running in its group
        except OSError:
            pass
        if ident is not None:
            _send(control, {"op": "exited", "id": ident, "pid": pid, "status": status})


def serve(control: socket.socket, preface: bytes = b"", of_source: bool = False) -> None:
    """Fork a child per `start`; in the main server (not `of_source`), a server per `source`."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: Dict[int, Any] = {}
    source_servers: List[int] = []
    retiring = False
    _send(control, {"op": "ready", "pid": os.getpid(), "python": sys.version.split()[0]})
    try:
        while not (retiring and not children):
            try:
                readable, _, _ = select.select([control, read_end], [], [])
            except InterruptedError:
                continue
            if read_end in readable:
                try:
                    while os.read(read_end, 512):
                        pass
                except BlockingIOError:
                    pass
                _reap(control, children)
            if control not in readable:
                continue
            try:
                data, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE, 4)
            except InterruptedError:
                continue
            except OSError:
                break
            if not data:
                for fd in fds:
                    os.close(fd)
                break
            message = json.loads(data)
            op = message.get("op")
            if op == "retire":  # a newer server of this source took over: end when idle
                retiring = True
            if op not in ("start", "source") or (op == "source" and of_source):
                for fd in fds:
                    os.close(fd)
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                if op == "start":
                    _run_forked(control, [read_end, write_end], message["request"], fds, preface)
                _become_source_server(control, [read_end, write_end], message, fds)
            for fd in fds:
                os.close(fd)
            children[pid] = message["id"]
            if op == "source":
                source_servers.append(pid)
            _send(control, {"op": "started", "id": message["id"], "pid": pid})
            _reap(control, children)
    finally:
        # A source server ends its own children when it sees flowc go: give it the time to.
        deadline = time.monotonic() + SOURCE_SERVER_GRACE_S
        while any(pid in children for pid in source_servers) and time.monotonic() < deadline:
            time.sleep(0.02)
            _reap(control, children)
        for pid in list(children):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        for pid in list(children):
            try:
                os.waitpid(pid, 0)
            except OSError:
                pass


def main(argv: List[str]) -> None:
    control = socket.socket(fileno=int(argv[0]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # flowc decides what an interrupt stops
    # What every child needs, imported once: Prefect, flowc's runtime and the child side.
    import prefect  # noqa: F401
    import prefect.engine.flow_runner  # noqa: F401
    import prefect.engine.task_runner  # noqa: F401

    import compiler.runtime  # noqa: F401
    import compiler.runtime.child  # noqa: F401
    import compiler.runtime.local  # noqa: F401
    import compiler.runtime.sources  # noqa: F401

    serve(control)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # no interpreter teardown (Prefect's modules): flowc waits for this exit


if __name__ == "__main__":
    main(sys.argv[1:])
