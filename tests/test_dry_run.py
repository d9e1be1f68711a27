"""`flowc build --dry-run`: the plan without building, pushing or registering, and its exit codes
(0 nothing would change, 2 something would or is unknown, 1 errors).

The registry is a stand-in answering the Docker Registry HTTP API's manifest HEAD (the one call the
dry run makes); the backend is tests/test_register.py's stand-in of Prefect Server, taught to
return the latest flow's `flow_group { settings }` where Prefect Server keeps the idempotency key.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import copy_project, flowc, tree
from tests.test_register import PrefectServerStandIn, _env, standin  # noqa: F401 - the fixture

SPEC = "specs/fan_in.yaml"


@pytest.fixture
def registry() -> Iterator[tuple[set[str], str]]:
    """A stand-in registry: HEAD /v2/<repo>/manifests/<tag> is 200 for the tags in the set, else 404."""
    tags: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
            match = re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", self.path)
            found = bool(match) and f"{match[1]}:{match[2]}" in tags
            self.send_response(200 if found else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield tags, f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _with_settings(state: PrefectServerStandIn) -> None:
    """Answer `flow { flow_group { settings } }` as Prefect Server does (the key in the group's settings)."""
    plain = state.handle

    def handle(body: dict[str, Any]) -> dict[str, Any]:
        answer = plain(body)
        if "flow_group" in body.get("query", "") and answer.get("data", {}).get("flow"):
            for flow in answer["data"]["flow"]:
                stored = next(f for f in state.flows if f.id == flow["id"])
                flow["flow_group"] = {"settings": {"idempotency_key": stored.idempotency_key}}
        return answer

    state.handle = handle  # type: ignore[method-assign]


def _project(tmp_path: Path, registry_host: str) -> Path:
    project = copy_project(tmp_path / "p", examples=True)
    spec = project / SPEC
    spec.write_text(spec.read_text().replace("image: localhost:5000/fan_in", f"image: {registry_host}/fan_in"))
    assert flowc("generate", SPEC, "-q", cwd=project).returncode == 0
    return project


def _no_engine(env: dict[str, str]) -> dict[str, str]:
    return {**env, "DOCKER_HOST": "tcp://127.0.0.1:9"}  # discard port: nobody answers


def test_without_backend_or_engine_it_answers_what_it_can_and_exits_2(tmp_path: Path, registry) -> None:
    tags, host = registry
    project = _project(tmp_path, host)
    env = _no_engine(_env("http://127.0.0.1:9/graphql", tmp_path / "home"))
    before = tree(project)
    done = flowc("build", "--dry-run", "--format", "json", SPEC, cwd=project, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    plan = json.loads(done.stdout)  # one JSON document, nothing else on stdout
    assert plan["changes"] is True and plan["errors"] == []
    (entry,) = plan["specs"]
    assert entry["image"].startswith(f"{host}/fan_in:") and entry["image_action"] == "build and push"
    assert entry["register_action"] == "unknown" and "no Prefect backend answers" in entry["register_reason"]
    assert tree(project) == before  # nothing written, generated/ and .flowc/ included

    human = flowc("build", "--dry-run", SPEC, cwd=project, env=env)
    assert human.returncode == 2
    assert "image" in human.stdout and "unknown" in human.stdout
    assert "would change" in human.stderr


def test_exit_0_when_the_image_is_in_the_registry_and_the_flow_is_registered(
    tmp_path: Path, registry, standin
) -> None:
    tags, host = registry
    state, api = standin
    _with_settings(state)
    project = _project(tmp_path, host)
    env = _no_engine(_env(api, tmp_path / "home"))
    registered = flowc("build", "--no-image", SPEC, cwd=project, env=env)
    assert registered.returncode == 0, registered.stderr
    plan = json.loads(flowc("build", "--dry-run", "--format", "json", SPEC, cwd=project, env=env).stdout)
    (entry,) = plan["specs"]
    assert entry["register_action"] == "skipped", entry
    assert entry["image_action"] == "build and push"
    tags.add(entry["image"].split("/", 1)[1])  # now the registry holds the tag
    creates = len(state.calls("create_flow_from_compressed_string"))

    done = flowc("build", "--dry-run", SPEC, cwd=project, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "up to date" in done.stdout and "skipped" in done.stdout
    assert len(state.calls("create_flow_run")) == 0
    assert len(state.calls("create_flow_from_compressed_string")) == creates  # it registered nothing

    # A changed spec: generate would write files, a new tag, a new version; still nothing is written.
    spec = project / SPEC
    spec.write_text(spec.read_text().replace("factor: 3.0", "factor: 4.0"))
    before = tree(project)
    changed = flowc("build", "--dry-run", "--format", "json", SPEC, cwd=project, env=env)
    assert changed.returncode == 2, changed.stderr
    plan = json.loads(changed.stdout)
    assert "generated/fan_in/flow.py" in plan["generate"]["would_write"]
    (entry,) = plan["specs"]
    assert entry["register_action"] == "new version" and entry["image_action"] == "build and push"
    assert tree(project) == before


def test_exit_1_on_spec_errors(tmp_path: Path, registry) -> None:
    _, host = registry
    project = _project(tmp_path, host)
    (project / SPEC).write_text("name: fan_in\nproject_name: lume\ncomposing_flows: []\n")
    env = _no_engine(_env("http://127.0.0.1:9/graphql", tmp_path / "home"))
    done = flowc("build", "--dry-run", "--format", "json", SPEC, cwd=project, env=env)
    assert done.returncode == 1
    assert json.loads(done.stdout)["errors"]
