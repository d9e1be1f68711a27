"""Shared test helpers: copies of this repository's flowc project in temporary directories."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SPECS = sorted(p for p in (REPO / "specs").glob("*.yaml") if p.name != "flows.lock.yaml")
# The specs compiled for Prefect 1 (the others say `target: prefect3`).
PREFECT1_SPECS = [p for p in SPECS if "\ntarget: prefect3\n" not in p.read_text()]


def copy_project(target: Path, *, generated: bool = True, examples: bool = False) -> Path:
    """pyproject.toml, specs/ (with the lock) and optionally generated/ and examples/, under target."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "pyproject.toml", target / "pyproject.toml")
    shutil.copytree(REPO / "specs", target / "specs")
    if generated:
        shutil.copytree(REPO / "generated", target / "generated")
    if examples:
        shutil.copytree(REPO / "examples", target / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    return target


def flowc(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "compiler", *args], capture_output=True, text=True, cwd=cwd, env=env
    )


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def graphql_body(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A POSTed GraphQL body as Prefect's client sends it: the query and its decoded variables."""
    return body.get("query", ""), json.loads(body.get("variables") or "null") or {}


@contextmanager
def graphql_server(handle: Callable[[dict[str, Any]], dict[str, Any]]) -> Iterator[str]:
    """An HTTP server on a free loopback port that answers each POSTed GraphQL body with
    `handle(body)`; yields its URL. For the stand-ins of Prefect Server in the tests."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length", 0))
            answer = json.dumps(handle(json.loads(self.rfile.read(length)))).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def do_GET(self) -> None:  # noqa: N802 - a GraphQL server refuses a bare GET
            self.send_response(400)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
