"""Registration with Prefect: `flowc build` against a stand-in of Prefect Server's GraphQL API.

No Prefect Server can run on this machine (it needs Postgres, Hasura and Apollo in containers
pulled from Docker Hub). `PrefectServerStandIn` below is a STAND-IN, not Prefect: a small HTTP
server answering only the GraphQL calls that registration makes (`tenant`, `project` lookup,
`create_project`, the latest `flow` of a project, `create_flow_from_compressed_string` with its
idempotency key), with Prefect Server's semantics for them. Prefect's real client talks to it,
so the requests checked here are the ones a real server would receive.
`test_registers_with_a_real_prefect_server` runs the same flow against a real server when one is
configured (FLOWC_TEST_PREFECT_SERVER), and is skipped otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import PREFECT1_SPECS, copy_project, flowc, graphql_body, graphql_server

SUMMARY = re.compile(r"^(.*); (\d+) registered, (\d+) skipped, (\d+) errored$", re.M)


@dataclass
class StoredFlow:
    id: str
    project_id: str
    name: str
    version: int
    idempotency_key: str | None
    serialized: dict[str, Any]


@dataclass
class PrefectServerStandIn:
    """STAND-IN for Prefect Server's GraphQL API: only what registration calls, nothing else."""

    tenant_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    projects: dict[str, str] = field(default_factory=dict)  # name -> id
    flows: list[StoredFlow] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_flow_registration: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, body: dict[str, Any]) -> dict[str, Any]:
        query, variables = graphql_body(body)
        with self.lock:
            self.requests.append({"query": query, "variables": variables})
            if "create_flow_from_compressed_string" in query:
                return self._create_flow(variables["input"])
            if "create_project" in query:
                return self._create_project(variables["input"])
            if match := re.search(r'project\(where: \{ name: \{ _eq: "([^"]*)" \} \}\)', query):
                found = [{"id": self.projects[match[1]]}] if match[1] in self.projects else []
                return {"data": {"project": found}}
            if match := re.search(
                r'flow\(where: \{ _and: \{ name: \{ _eq: "([^"]*)" \}, project: \{ id: \{ _eq: "([^"]*)" \} \} \} \}',
                query,
            ):
                latest = self._latest(match[2], match[1])
                return {"data": {"flow": [{"id": latest.id, "version": latest.version}] if latest else []}}
            if re.search(r"^\s*query \{\s*tenant \{", query):
                return {"data": {"tenant": [{"id": self.tenant_id}]}}
        return {"errors": [{"message": f"the stand-in does not implement: {query[:200]}"}]}

    def _create_project(self, data: dict[str, Any]) -> dict[str, Any]:
        assert data["tenant_id"] == self.tenant_id
        if data["name"] in self.projects:
            return {"errors": [{"message": "Uniqueness violation."}]}
        self.projects[data["name"]] = str(uuid.uuid4())
        return {"data": {"create_project": {"id": self.projects[data["name"]]}}}

    def _latest(self, project_id: str, name: str) -> StoredFlow | None:
        versions = [f for f in self.flows if f.project_id == project_id and f.name == name]
        return max(versions, key=lambda f: f.version) if versions else None

    def _create_flow(self, data: dict[str, Any]) -> dict[str, Any]:
        from prefect.utilities.graphql import decompress

        if self.fail_flow_registration:
            return {"errors": [{"message": "stand-in: registration refused"}]}
        if data["project_id"] not in self.projects.values():
            return {"errors": [{"message": "Invalid project."}]}
        serialized = decompress(data["serialized_flow"])
        latest = self._latest(data["project_id"], serialized["name"])
        key = data.get("idempotency_key")
        # Prefect Server: the same key as the flow group's latest version returns that version.
        if latest is not None and key is not None and latest.idempotency_key == key:
            return {"data": {"create_flow_from_compressed_string": {"id": latest.id}}}
        stored = StoredFlow(
            id=str(uuid.uuid4()),
            project_id=data["project_id"],
            name=serialized["name"],
            version=(latest.version if latest else 0) + 1,
            idempotency_key=key,
            serialized=serialized,
        )
        self.flows.append(stored)
        return {"data": {"create_flow_from_compressed_string": {"id": stored.id}}}

    def calls(self, word: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if word in r["query"]]


@pytest.fixture
def standin() -> Iterator[tuple[PrefectServerStandIn, str]]:
    """The stand-in on a free loopback port; yields it and its URL."""
    state = PrefectServerStandIn()
    with graphql_server(lambda body: state.handle(body)) as url:  # late-bound: tests may wrap handle
        yield state, url


def _env(api: str, home: Path) -> dict[str, str]:
    """Prefect configured for a server at `api`, with a home of its own (no stray backend.toml)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT__")}
    return {**env, "PREFECT__BACKEND": "server", "PREFECT__SERVER__ENDPOINT": api, "PREFECT__HOME_DIR": str(home)}


def _summary(stdout: str) -> tuple[int, int, int]:
    match = SUMMARY.search(stdout)
    assert match, stdout
    return int(match[2]), int(match[3]), int(match[4])


def _image_constant(flow_py: Path) -> str:
    match = re.search(r'^IMAGE = "([^"]+)"$', flow_py.read_text(), re.M)
    assert match
    return match[1]


def test_build_creates_the_project_and_registers_the_flow_as_prefect_would(
    tmp_path: Path, standin: tuple[PrefectServerStandIn, str]
) -> None:
    state, api = standin
    project = copy_project(tmp_path / "p")
    result = flowc("build", "--no-image", "specs/fan_in.yaml", cwd=project, env=_env(api, tmp_path / "home"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "created project 'lume'" in result.stderr
    assert _summary(result.stderr) == (1, 0, 0)
    assert list(state.projects) == ["lume"]
    [call] = state.calls("create_flow_from_compressed_string")
    sent = call["variables"]["input"]
    [stored] = state.flows
    payload = stored.serialized
    assert sent["project_id"] == state.projects["lume"]
    assert sent["idempotency_key"] == hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    assert payload["name"] == "fan_in"
    assert payload["storage"]["type"] == "Local"
    assert payload["storage"]["path"] == "/opt/flowc/flow.py"
    assert payload["storage"]["stored_as_script"] is True
    assert payload["storage"]["flows"] == {"fan_in": "/opt/flowc/flow.py"}
    assert payload["run_config"]["type"] == "DockerRun"
    assert payload["run_config"]["image"] == _image_constant(project / "generated" / "fan_in" / "flow.py")
    assert payload["run_config"]["labels"] == ["lume-services"]
    assert sorted(p["name"] for p in payload["parameters"]) == [
        "left-factor",
        "right-factor",
        "start-factor",
        "start-value",
    ]


def test_unchanged_flow_is_skipped_and_an_edited_spec_registers_a_new_version(
    tmp_path: Path, standin: tuple[PrefectServerStandIn, str]
) -> None:
    state, api = standin
    project = copy_project(tmp_path / "p")
    env = _env(api, tmp_path / "home")
    first = flowc("build", "--no-image", "specs/fan_in.yaml", cwd=project, env=env)
    second = flowc("build", "--no-image", "specs/fan_in.yaml", cwd=project, env=env)
    assert first.returncode == second.returncode == 0, second.stdout + second.stderr
    assert _summary(second.stderr) == (0, 1, 0)
    assert "fan_in: skipped (metadata unchanged) in 'lume'" in second.stderr
    assert "created project" not in second.stderr
    assert len(state.calls("create_project")) == 1
    assert [f.version for f in state.flows] == [1]

    spec = project / "specs" / "fan_in.yaml"
    spec.write_text(spec.read_text().replace("parameters: {factor: 3.0}", "parameters: {factor: 4.0}"))
    third = flowc("build", "--no-image", "specs/fan_in.yaml", cwd=project, env=env)
    assert third.returncode == 0, third.stdout + third.stderr
    assert _summary(third.stderr) == (1, 0, 0)
    assert "(version 2," in third.stderr
    assert [f.version for f in state.flows] == [1, 2]
    defaults = {p["name"]: p["default"] for p in state.flows[1].serialized["parameters"]}
    assert defaults["left-factor"] == 4.0


def test_prefect_register_agrees_with_flowc_on_the_idempotency_key(
    tmp_path: Path, standin: tuple[PrefectServerStandIn, str]
) -> None:
    """`prefect register -p` and `prefect register --json` see the flow flowc registered as unchanged."""
    import subprocess

    state, api = standin
    project = copy_project(tmp_path / "p")
    env = _env(api, tmp_path / "home")
    assert flowc("build", "--no-image", "specs/reverse_order.yaml", cwd=project, env=env).returncode == 0
    built = flowc("build", "--no-image", "--json", "flows.json", "specs/reverse_order.yaml", cwd=project, env=env)
    assert built.returncode == 0, built.stderr
    for source in (["-p", "generated/reverse_order/flow.py"], ["--json", "flows.json"]):
        result = subprocess.run(
            [sys.executable, "-m", "prefect", "register", "--project", "lume", *source],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Skipped (metadata unchanged)" in result.stdout, result.stdout
    assert [f.version for f in state.flows] == [1]


def test_every_spec_registers_into_its_own_project(tmp_path: Path, standin: tuple[PrefectServerStandIn, str]) -> None:
    state, api = standin
    project = copy_project(tmp_path / "p")
    # Every Prefect 1 spec (the prefect3 ones deploy to a Prefect 3 server: tests/test_prefect3_e2e.py).
    paths = [f"specs/{p.name}" for p in PREFECT1_SPECS]
    assert len(paths) >= 6
    result = flowc("build", "--no-image", *paths, cwd=project, env=_env(api, tmp_path / "home"))
    assert result.returncode == 0, result.stdout + result.stderr
    specs = sorted(p.stem for p in PREFECT1_SPECS)
    assert _summary(result.stderr) == (len(specs), 0, 0)
    assert sorted(state.projects) == ["lume", "test"]
    by_project = {
        name: sorted(f.name for f in state.flows if f.project_id == pid) for name, pid in state.projects.items()
    }
    assert by_project["test"] == ["lume_services_test"]
    assert sorted(by_project["lume"] + by_project["test"]) == specs


def test_a_refused_registration_counts_as_errored_and_exits_1(
    tmp_path: Path, standin: tuple[PrefectServerStandIn, str]
) -> None:
    state, api = standin
    state.fail_flow_registration = True
    project = copy_project(tmp_path / "p")
    result = flowc("build", "--no-image", "specs/fan_in.yaml", cwd=project, env=_env(api, tmp_path / "home"))
    assert result.returncode == 1
    assert _summary(result.stderr) == (0, 0, 1)
    assert "error: fan_in: registration in 'lume' failed: " in result.stderr
    assert "stand-in: registration refused" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_backend_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    project = copy_project(tmp_path / "p")
    api = f"http://127.0.0.1:{port}"
    result = flowc("build", "--no-image", "specs/fan_in.yaml", cwd=project, env=_env(api, tmp_path / "home"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: cannot reach the Prefect backend (server) at {api}: ")
    assert "refused" in lines[0]


REAL_SERVER = os.environ.get("FLOWC_TEST_PREFECT_SERVER")


@pytest.mark.skipif(
    not REAL_SERVER,
    reason="no Prefect Server configured: set FLOWC_TEST_PREFECT_SERVER=http://HOST:4200 to register for real "
    "(none can run on this machine; the stand-in tests above cover the calls)",
)
def test_registers_with_a_real_prefect_server(tmp_path: Path) -> None:
    project_name = f"flowc-test-{uuid.uuid4().hex[:8]}"
    project = copy_project(tmp_path / "p")
    spec = project / "specs" / "fan_in.yaml"
    spec.write_text(spec.read_text().replace("project_name: lume\nimage", f"project_name: {project_name}\nimage", 1))
    env = _env(str(REAL_SERVER), tmp_path / "home")
    first = flowc("build", "--no-image", "specs/fan_in.yaml", cwd=project, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"created project {project_name!r}" in first.stderr
    assert _summary(first.stderr) == (1, 0, 0)
    second = flowc("build", "--no-image", "specs/fan_in.yaml", cwd=project, env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert _summary(second.stderr) == (0, 1, 0)
