"""Capturing child-flow interfaces, each source in a process of its own (own process group).

The process is `[tool.flowc] python` running compiler/runtime/introspect.py (loaded by path, so
nothing of flowc need be installed there). It answers with JSON in a file of a private temporary
directory; what it prints goes to flowc's stderr, each line prefixed with the flow. An exit, a
crash or a hang ends as one message, never as flowc's own exit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable

INTROSPECT = Path(__file__).resolve().parent / "runtime" / "introspect.py"
# Loads introspect.py under a private name, without putting its directory on sys.path (its
# neighbours, files.py or tasks.py, would shadow a child's own modules of the same names).
BOOT = (
    "import importlib.util as u, sys; s = u.spec_from_file_location('_flowc_introspect', sys.argv[1]); "
    "m = u.module_from_spec(s); s.loader.exec_module(m); m.main(sys.argv[2:])"
)
TIMEOUT_ENV = "FLOWC_IMPORT_TIMEOUT"
DEFAULT_TIMEOUT_S = 120.0
MAX_FORWARDED_BYTES = 1024 * 1024  # of one child's output on flowc's stderr; the rest is counted

_stderr_lock = threading.Lock()
# Process groups of the children alive now: Ctrl-C or SIGTERM stops every one of them.
_live: set[int] = set()
_live_lock = threading.Lock()
_stopping = threading.Event()


@dataclass(frozen=True)
class Request:
    """One flow to describe: from its source, or (no source) from the Prefect backend."""

    project_name: str
    name: str
    source: str | None

    @property
    def key(self) -> str:
        return f"{self.project_name}/{self.name}"


@dataclass(frozen=True)
class Answer:
    request: Request
    data: dict[str, Any] | None  # the child's description of the flow when it gave one
    error: str | None = None
    unreachable: bool = False  # the backend could not be reached (a flow without source)


def import_timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        return DEFAULT_TIMEOUT_S
    return value if 0 < value < 86400 else DEFAULT_TIMEOUT_S


def capture_all(requests: Iterable[Request], python: str, root: Path, timeout: float | None = None) -> dict[str, Answer]:
    """Describe every requested flow, a few processes at a time; keyed project/name."""
    items = list(requests)
    if not items:
        return {}
    limit = import_timeout() if timeout is None else timeout
    jobs = max(1, min(4, os.cpu_count() or 1, len(items)))
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if main else None
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = [pool.submit(capture, item, python, root, limit) for item in items]
        answers = [future.result() for future in futures]
    except BaseException:
        _stop_all()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _stopping.clear()
        if main:
            signal.signal(signal.SIGTERM, previous)
    return {answer.request.key: answer for answer in answers}


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _stop_all() -> None:
    _stopping.set()
    with _live_lock:
        groups = list(_live)
    for group in groups:
        _kill_group(group)


def capture(request: Request, python: str, root: Path, timeout: float) -> Answer:
    with tempfile.TemporaryDirectory(prefix="flowc-lock-") as scratch:
        request_path = Path(scratch) / "request.json"
        answer_path = Path(scratch) / "answer.json"
        request_path.write_text(
            json.dumps(
                {"root": str(root), "source": request.source, "project_name": request.project_name, "name": request.name}
            ),
            encoding="utf-8",
        )
        command = [python, "-c", BOOT, str(INTROSPECT), str(request_path), str(answer_path)]
        outcome = run_isolated(command, root, request.key, timeout)
        data = _read_answer(answer_path)
    if data is None:
        return Answer(request, None, outcome or "the process ended without describing the flow")
    if not data.get("ok"):
        return Answer(request, None, str(data.get("error") or "unknown failure"), bool(data.get("unreachable")))
    return Answer(request, data)


def _read_answer(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def run_isolated(command: list[str], root: Path, label: str, timeout: float, env: dict[str, str] | None = None) -> str | None:
    """Run one capturing child (`command[0]` is its interpreter) in a process group of its own,
    its output forwarded with `[label]`, stopped at `timeout` or with flowc; None when it exited 0,
    else why it did not. `env` adds to (or overrides) flowc's environment."""
    python = command[0]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1", **(env or {}))
    try:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as error:
        return f"cannot start the child-flow interpreter {python!r}: {error.strerror or error}"
    assert process.stdout is not None
    with _live_lock:
        _live.add(process.pid)
    if _stopping.is_set():
        _kill_group(process.pid)
    pump = threading.Thread(target=_forward, args=(process.stdout, label), daemon=True)
    pump.start()
    finished = _wait_without_reaping(process.pid, timeout)
    # The leader is a zombie (or still running): its group id cannot have been reused yet.
    _kill_group(process.pid)
    with _live_lock:  # before reaping: a group id in _live always still names this child's group
        _live.discard(process.pid)
    status = process.wait()
    pump.join(timeout=5)
    if not finished:
        return f"importing it did not finish within {timeout:g}s; its processes were stopped"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"the process importing it was killed by {name}"
    if status != 0:
        return f"the process importing it exited with status {status}"
    return None


def _wait_without_reaping(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        if info is not None and info.si_pid == pid:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _forward(stream: IO[bytes], label: str) -> None:
    """The child's output on flowc's stderr, one prefixed line at a time, at most a megabyte."""
    forwarded = 0
    dropped = 0
    try:
        for raw in iter(lambda: stream.readline(65536), b""):
            if forwarded >= MAX_FORWARDED_BYTES:
                dropped += len(raw)
                continue
            forwarded += len(raw)
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with _stderr_lock:
                sys.stderr.write(f"[{label}] {line}\n")
                sys.stderr.flush()
        if dropped:
            with _stderr_lock:
                sys.stderr.write(f"[{label}] ... {dropped} more bytes of output not shown\n")
    except (OSError, ValueError):
        pass
    finally:
        stream.close()
