"""Shared fixtures: an isolated runtime environment and a real MongoDB-protocol server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# `examples` (the child flows specs name as sources) is not an installed package; plain `pytest`
# only puts tests/ on the path, so add the repository root the way `python -m pytest` does.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

NX_27017_START_TIMEOUT_S = 20.0


@pytest.fixture
def runtime_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a fresh directory with a private SQLite results store and no mount configured."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLOWC_RESULTS_DB", f"sqlite:///{tmp_path / 'results.db'}")
    monkeypatch.delenv("FLOWC_MOUNT", raising=False)
    return tmp_path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + NX_27017_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"nx-27017 exited with {process.returncode}:\n{log.read_text(errors='replace')}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nx-27017 did not listen on 127.0.0.1:{port} in time")


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real nx-27017 server (MongoDB wire protocol over SQLite) on a free loopback port.

    Yields `mongodb://127.0.0.1:PORT`; the process is stopped by its PID at the end of the session.
    """
    for module in ("nx_27017", "pymongo"):
        try:
            __import__(module)
        except ImportError:
            if os.environ.get("FLOWC_INTEGRATION") == "1":  # CI: a missing server is a failure
                pytest.fail(f"{module} is not installed, and FLOWC_INTEGRATION=1 needs the MongoDB tests")
            pytest.skip(f"{module} is not installed")
    workdir = tmp_path_factory.mktemp("nx_27017")
    port = _free_port()
    log = workdir / "server.log"
    command = [
        sys.executable,
        "-c",
        "from nx_27017.nx_27017 import main; main()",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--db",
        str(workdir / "mongo.db"),
        "--pid-file",
        str(workdir / "nx_27017.pid"),
        "--log-file",
        str(workdir / "nx_27017.log"),
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=workdir, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        _wait_for_port(port, process, log)
        yield f"mongodb://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.terminate()  # SIGTERM to this server's PID only
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def mongo_url(mongo_server: str, request: pytest.FixtureRequest) -> str:
    """A results-store URL naming a database of its own for each test."""
    name = "".join(c if c.isalnum() else "_" for c in request.node.name)[:48]
    return f"{mongo_server}/t_{name}"


# Quarantine (2026-12-01). Eight parallel branches landed the same hour; these tests broke where
# one branch's change met another's, and were found by the last full run before the session ended.
# Each still runs and reports XFAIL/XPASS; none is counted as done. Issues 12-15 stay open on them,
# and the closing note lists them. Remove an entry with the fix that makes it pass.
QUARANTINE = {
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        base = item.nodeid.split("[", 1)[0]
        reason = QUARANTINE.get(item.nodeid) or QUARANTINE.get(base)
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=f"quarantined: {reason}", strict=False))
