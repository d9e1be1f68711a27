"""Child runs on a server: retries as new runs, timeouts, labels and idempotency keys.

No Prefect Server can run on this machine (see tests/test_register.py). `ChildRunServerStandIn`
is a STAND-IN, not Prefect: an HTTP server answering only the GraphQL calls that a generated
flow's `run_child_flow` makes through Prefect's own client (`tenant`, the `flow` lookup by name,
`create_flow_run` with its idempotency key, the `flow_run` query, `cancel_flow_run`), with the
documented semantics of Prefect Server for them: a key already used for a flow returns that run
(keys never expire, prefect#5221, and cannot be reset, prefect#8847). Child runs do not execute:
each advances Scheduled -> Running -> its scripted end as it is polled.
The generated flow is loaded the way an agent loads it (`extract_flow_from_file`) and run with
Prefect's engine in a process configured for the stand-in; running it twice under one flow run id
is what a restarted orchestrator does.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import copy_project, flowc, graphql_body, graphql_server

SPEC = """\
name: options_demo
project_name: lume
image: localhost:5000/options_demo
composing_flows:
  - name: scale
    alias: flaky
    project_name: lume
    parameters: {value: 1.0, factor: 2.0}
    labels: [gpu, lume-services]
    retries: 2
    retry_delay: 0
  - name: scale
    alias: fragile
    project_name: lume
    parameters: {value: 2.0, factor: 2.0}
  - name: scale
    alias: slow
    project_name: lume
    parameters: {value: 3.0, factor: 2.0}
    timeout: 1
"""

RUN_SCRIPT = """\
import json, sys
from prefect.utilities.storage import extract_flow_from_file
flow = extract_flow_from_file(file_path=sys.argv[1], flow_name="options_demo")
state = flow.run(run_on_schedule=False, context={"flow_run_id": sys.argv[2], "flow_run_name": "composite"})
print(json.dumps({str(t.name): [type(s).__name__, str(s.message)] for t, s in state.result.items()}))
"""


@dataclass
class ChildRun:
    id: str
    flow_id: str
    idempotency_key: str
    labels: list[str] | None
    parameters: dict[str, Any]
    outcome: str  # Success | Failed | hang
    state: str = "Scheduled"


@dataclass
class ChildRunServerStandIn:
    """STAND-IN for the flow-run calls of Prefect Server's GraphQL API, nothing else."""

    tenant_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    flow_ids: dict[tuple[str, str], str] = field(default_factory=dict)
    outcomes: dict[str, list[str]] = field(default_factory=dict)  # by the run's `value` parameter
    runs: dict[str, ChildRun] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, body: dict[str, Any]) -> dict[str, Any]:
        query, variables = graphql_body(body)
        with self.lock:
            self.requests.append({"query": query, "variables": variables})
            if "create_flow_run(input:" in query:
                return self._create(variables["input"])
            if "cancel_flow_run(input:" in query:
                run = self.runs[variables["input"]["flow_run_id"]]
                run.state = "Cancelled"
                return {"data": {"cancel_flow_run": {"state": "Cancelled"}}}
            if match := re.search(r'flow_run\(where: \{ id: \{ _eq: "([^"]+)" \} \}\)', query):
                return {"data": {"flow_run": [self._advance(self.runs[match[1]])]}}
            if match := re.search(r'flow\(where: \{ name: \{ _eq: "([^"]+)" \}.*project: \{ name: \{ _eq: "([^"]+)" \}', query):
                return {"data": {"flow": [self._flow(match[2], match[1])]}}
            if re.search(r"tenant \{", query):
                return {"data": {"tenant": [{"id": self.tenant_id, "slug": "standin"}]}}
        return {"errors": [{"message": f"the stand-in does not implement: {query[:300]}"}]}

    def _flow(self, project: str, name: str) -> dict[str, Any]:
        from prefect.serialization.storage import StorageSchema
        from prefect.storage import Local

        flow_id = self.flow_ids.setdefault((project, name), str(uuid.uuid4()))
        storage = StorageSchema().dump(Local(directory="/opt/child", validate=False))
        return {
            "id": flow_id,
            "settings": {},
            "run_config": None,
            "serialized_flow": {},
            "name": name,
            "archived": False,
            "project": {"name": project},
            "core_version": "1.4.1",
            "storage": storage,
            "flow_group": {"labels": ["child-default"]},
        }

    def _create(self, data: dict[str, Any]) -> dict[str, Any]:
        key = data["idempotency_key"]
        for run in self.runs.values():  # Prefect Server: the same key for the same flow -> that run
            if run.flow_id == data["flow_id"] and run.idempotency_key == key:
                return {"data": {"create_flow_run": {"id": run.id}}}
        parameters = data.get("parameters") or {}
        script = self.outcomes.setdefault(str(parameters.get("value")), [])
        run = ChildRun(
            id=str(uuid.uuid4()),
            flow_id=data["flow_id"],
            idempotency_key=key,
            labels=data.get("labels"),
            parameters=parameters,
            outcome=script.pop(0) if script else "Success",
        )
        self.runs[run.id] = run
        return {"data": {"create_flow_run": {"id": run.id}}}

    def _advance(self, run: ChildRun) -> dict[str, Any]:
        from prefect.engine.state import Cancelled, Failed, Running, Scheduled, Success

        if run.state == "Scheduled":
            run.state = "Running"
        elif run.state == "Running" and run.outcome != "hang":
            run.state = run.outcome
        state = {"Scheduled": Scheduled, "Running": Running, "Success": Success, "Failed": Failed,
                 "Cancelled": Cancelled}[run.state](f"stand-in: {run.state}")
        return {
            "id": run.id,
            "name": f"child-{run.id[:8]}",
            "flow_id": run.flow_id,
            "serialized_state": state.serialize(),
            "states": [],
            "labels": run.labels or [],
            "parameters": run.parameters,
            "context": {},
            "updated": "2026-12-01T12:00:00+00:00",
            "run_config": None,
        }

    def runs_of(self, value: float) -> list[ChildRun]:
        return [run for run in self.runs.values() if run.parameters.get("value") == value]

    def calls(self, word: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if word in r["query"]]


@pytest.fixture
def standin() -> Iterator[tuple[ChildRunServerStandIn, str]]:
    state = ChildRunServerStandIn()
    with graphql_server(state.handle) as url:
        yield state, url


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_project(tmp_path_factory.mktemp("server") / "p")
    (root / "specs" / "options_demo.yaml").write_text(SPEC)
    result = flowc("generate", "specs/options_demo.yaml", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def _run(project: Path, api: str, home: Path, flow_run_id: str) -> dict[str, list[str]]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT__")}
    env.update(
        PREFECT__BACKEND="server",
        PREFECT__SERVER__ENDPOINT=api,
        PREFECT__HOME_DIR=str(home),
        PREFECT__LOGGING__LEVEL="INFO",
        FLOWC_CHILD_POLL_SECONDS="0.05",
    )
    flow_py = project / "generated" / "options_demo" / "flow.py"
    result = subprocess.run(
        [sys.executable, "-c", RUN_SCRIPT, str(flow_py), flow_run_id],
        capture_output=True, text=True, env=env, cwd=project, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _attempt(run: ChildRun) -> int:
    return int(run.idempotency_key.rsplit("/", 1)[1])


def test_a_failed_child_is_retried_as_a_new_run_with_its_labels(
    tmp_path: Path, project: Path, standin: tuple[ChildRunServerStandIn, str]
) -> None:
    state, api = standin
    state.outcomes = {"1.0": ["Failed", "Success"], "2.0": ["Failed"], "3.0": ["Success"]}
    tasks = _run(project, api, tmp_path / "home", "composite-1")
    assert tasks["run flaky"][0] == "Success"
    flaky = state.runs_of(1.0)
    assert len(flaky) == 2 and len({r.id for r in flaky}) == 2  # a new run, not a re-wait
    assert [_attempt(r) for r in flaky] == [0, 1]
    assert [r.labels for r in flaky] == [["gpu", "lume-services"]] * 2
    # Without retries, one failed run fails the step; without labels, none are sent (the flow's own).
    assert tasks["run fragile"][0] == "Failed"
    [fragile] = state.runs_of(2.0)
    assert fragile.labels is None
    assert tasks["run slow"][0] == "Success"


def test_a_child_past_its_timeout_is_cancelled_and_fails(
    tmp_path: Path, project: Path, standin: tuple[ChildRunServerStandIn, str]
) -> None:
    state, api = standin
    state.outcomes = {"3.0": ["hang"]}
    tasks = _run(project, api, tmp_path / "home", "composite-1")
    [slow] = state.runs_of(3.0)
    assert slow.state == "Cancelled"
    assert [c["variables"]["input"]["flow_run_id"] for c in state.calls("cancel_flow_run")] == [slow.id]
    assert tasks["run slow"][0] == "Failed"
    assert "timeout of 1 s" in tasks["run slow"][1]


def test_a_restarted_orchestrator_reuses_started_children_and_reruns_failed_ones_as_new_runs(
    tmp_path: Path, project: Path, standin: tuple[ChildRunServerStandIn, str]
) -> None:
    state, api = standin
    state.outcomes = {"1.0": ["Failed", "Success"], "2.0": ["Failed", "Success"], "3.0": ["hang", "Success"]}
    first = _run(project, api, tmp_path / "home", "composite-1")
    assert [first[f"run {s}"][0] for s in ("flaky", "fragile", "slow")] == ["Success", "Failed", "Failed"]
    runs_before = set(state.runs)
    second = _run(project, api, tmp_path / "home", "composite-1")  # same flow run: a restart
    assert [second[f"run {s}"][0] for s in ("flaky", "fragile", "slow")] == ["Success"] * 3
    new = [state.runs[i] for i in set(state.runs) - runs_before]
    # flaky's successful run was found by its key and not started again; fragile and slow, whose
    # runs failed, each got one new run under the next attempt's key (never a re-wait: prefect#7127).
    assert sorted((r.parameters["value"], _attempt(r)) for r in new) == [(2.0, 1), (3.0, 1)]


def test_keys_are_deterministic_and_scoped_to_the_composite_run(
    tmp_path: Path, project: Path, standin: tuple[ChildRunServerStandIn, str]
) -> None:
    state, api = standin
    _run(project, api, tmp_path / "home", "composite-1")
    _run(project, api, tmp_path / "home", "composite-2")
    keys = [c["variables"]["input"]["idempotency_key"] for c in state.calls("create_flow_run")]
    first, second = keys[: len(keys) // 2], keys[len(keys) // 2 :]
    assert all(k.startswith("flowc/composite-1/") for k in first)
    assert all(k.startswith("flowc/composite-2/") for k in second)
    assert sorted(k.split("/", 2)[2] for k in first) == sorted(k.split("/", 2)[2] for k in second)
    assert len(state.runs) == 6  # another run of the composite starts its own children
