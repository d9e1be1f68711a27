"""A private Prefect server (2.14 or 3.x) with a process work pool and a worker.

`flowc run` of a prefect3 spec and the e2e tests start one. Everything runs from the Prefect 3
interpreter's environment, with its own PREFECT_HOME under a scratch directory (SQLite, analytics
and UI off), on a free port of 127.0.0.1. The server and the worker are process groups of their
own (start_new_session, so the worker honours SIGTERM), stopped by their PIDs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEPLOYER = HERE / "deployer.py"
PROBE = HERE / "probe.py"
# How often the worker asks for runs (Prefect's default: 10 s); it dominates a child's start.
WORKER_QUERY_SECONDS = "1"
# A REST call answered 502/503 is tried again this many times (about a minute in all).
API_RETRIES = 8
RETRIED_STATUSES = (502, 503)
STOP_SECONDS = 20


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrefectServer:
    def __init__(self, python: str, scratch: Path) -> None:
        self.bin = Path(python).parent
        self.scratch = scratch
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.processes: list[subprocess.Popen[bytes]] = []
        home = scratch / "prefect-home"
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT")},
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
            "PREFECT_WORKER_QUERY_SECONDS": WORKER_QUERY_SECONDS,
            "PREFECT_WORKER_PREFETCH_SECONDS": "5",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PREFECT_LOCAL_STORAGE_PATH": str(home / "storage"),
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
            "PYTHONDONTWRITEBYTECODE": "1",
            # Children and the composite run in different working directories: one store for all.
            "FLOWC_RESULTS_DB": f"sqlite:///{scratch / 'results.db'}",
        }

    @property
    def prefect(self) -> str:
        return str(self.bin / "prefect")

    @property
    def python(self) -> str:
        return str(self.bin / "python")

    def start(self, pool: str = "flowc", timeout: float = float(os.environ.get("FLOWC_PREFECT_START_TIMEOUT", "600"))) -> None:
        self._spawn("server", [self.prefect, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)])
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if time.monotonic() > deadline or self.processes[0].poll() is not None:
                raise RuntimeError(f"the Prefect server did not start; see {self.scratch / 'server.log'}")
            time.sleep(0.5)
        self.cli("work-pool", "create", pool, "--type", "process")
        self._spawn("worker", [self.prefect, "worker", "start", "--pool", pool, "--limit", "8"])

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def _spawn(self, name: str, command: list[str]) -> None:
        log = (self.scratch / f"{name}.log").open("ab")
        self.processes.append(
            subprocess.Popen(
                command, env=self.env, cwd=self.scratch, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        )

    def cli(self, *arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.prefect, *arguments], env=self.env, cwd=self.scratch, capture_output=True, text=True, timeout=300
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"prefect {' '.join(arguments)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def deploy(self, *requests: dict[str, Any]) -> list[dict[str, Any]]:
        """Deployments through flowc's deployer (one process), as `flowc build` creates the composite's."""
        with tempfile.TemporaryDirectory(dir=self.scratch) as work:
            request_path, answer_path = Path(work) / "request.json", Path(work) / "answer.json"
            request_path.write_text(json.dumps({"deployments": list(requests)}))
            subprocess.run([self.python, str(DEPLOYER), str(request_path), str(answer_path)], env=self.env, check=True, timeout=300)
            answers = json.loads(answer_path.read_text())["deployments"]
        for request, answer in zip(requests, answers):
            if not answer.get("ok"):
                raise RuntimeError(f"deploying {request['flow_name']}/{request['name']}: {answer.get('error')}")
        return answers

    def probe(self, flow_run_id: str) -> dict[str, Any]:
        """What a composite flow run did: its state and each child's state and results."""
        done = subprocess.run(
            [self.python, str(PROBE), flow_run_id], env=self.env, capture_output=True, text=True, timeout=300
        )
        if done.returncode != 0:
            raise RuntimeError(f"reading flow run {flow_run_id} back failed: {done.stderr[-2000:]}")
        return {"id": flow_run_id, **json.loads(done.stdout)}

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """One REST call; a 503 (the server's answer to a locked SQLite database) is retried,
        as Prefect's own client does, with a growing delay."""
        data = None if body is None else json.dumps(body).encode()
        for attempt in range(API_RETRIES + 1):
            request = urllib.request.Request(
                f"{self.api_url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    text = response.read()
                return json.loads(text) if text else None
            except urllib.error.HTTPError as error:
                if error.code not in RETRIED_STATUSES or attempt == API_RETRIES:
                    raise
            time.sleep(min(2.0**attempt, 10.0))
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """The worker first (it reports its stop to the server), then the server; each by its
        process group, SIGKILL after STOP_SECONDS."""
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()
