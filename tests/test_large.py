"""Large compositions (issue 7): generated flows use `IndexedFlow`, a prefect.Flow whose graph
sort and edge lookups are linear, and `LocalThreadExecutor`, whose submit is linear. These tests
pin that it is the same flow as before, only faster: the same serialized graph as Prefect's own
`Flow`, valid orders on random DAGs, the same run results and failures as with
`LocalDaskExecutor`, concurrency for independent tasks, and cycles that still cannot be built or
registered.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import prefect
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prefect import Flow, Task
from prefect.core.edge import Edge
from prefect.executors import LocalDaskExecutor
from prefect.serialization.flow import FlowSchema
from prefect.utilities.serialization import from_qualified_name

import compiler.runtime
from compiler.compile import compile_spec
from compiler.diagnostics import CompileError
from compiler.lock import FlowInterface, Lock, ParameterInterface, TaskInterface
from compiler.runtime import IndexedFlow, LocalThreadExecutor, run_child_flow
from tests.helpers import PREFECT1_SPECS, REPO

SMALL = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# Loading one generated module with either flow class -----------------------------------------


@contextmanager
def flow_class(cls: type[Flow]) -> Iterator[None]:
    """Make `from compiler.runtime import IndexedFlow` in a generated module bind `cls`."""
    saved = compiler.runtime.IndexedFlow
    compiler.runtime.IndexedFlow = cls  # type: ignore[misc]
    try:
        yield
    finally:
        compiler.runtime.IndexedFlow = saved  # type: ignore[misc]


def load_flow(source: str, cls: type[Flow] = IndexedFlow) -> Flow:
    """Execute a generated flow.py's text and return its `flow`, built with `cls`."""
    namespace: dict[str, Any] = {"__name__": "<flow>"}
    with flow_class(cls):
        exec(compile(source, "<generated flow.py>", "exec"), namespace)
    return namespace["flow"]


def without_type(serialized: dict) -> dict:
    return {key: value for key, value in serialized.items() if key != "type"}


def assert_valid_order(flow: Flow, order: tuple[Task, ...], tasks: set[Task] | None = None) -> None:
    """Every task exactly once, and every edge between them points forward."""
    tasks = flow.tasks if tasks is None else tasks
    assert len(order) == len(tasks) and set(order) == tasks
    position = {task: n for n, task in enumerate(order)}
    for edge in flow.edges:
        if edge.upstream_task in position and edge.downstream_task in position:
            assert position[edge.upstream_task] < position[edge.downstream_task], edge


def assert_same_serialized_flow(source: str) -> dict:
    """The module built with IndexedFlow and with prefect.Flow serializes to the same flow."""
    indexed = load_flow(source, IndexedFlow)
    plain = load_flow(source, Flow)
    assert type(indexed) is IndexedFlow and type(plain) is Flow
    ours, theirs = indexed.serialize(), plain.serialize()
    assert without_type(ours) == without_type(theirs)
    assert (ours["type"], theirs["type"]) == ("compiler.runtime.flow.IndexedFlow", "prefect.core.flow.Flow")
    # The parts the issue names, spelled out so a difference reads clearly.
    assert [t["slug"] for t in ours["tasks"]] == [t["slug"] for t in theirs["tasks"]]
    assert ours["edges"] == theirs["edges"]
    assert ours["parameters"] == theirs["parameters"]
    assert ours["reference_tasks"] == theirs["reference_tasks"]
    return ours


# Synthetic compositions, compiled in process --------------------------------------------------

PROJECT = "large"
WIDTH = 12  # parameters of the synthetic child: p0..p11, one per possible parent


def _persisting(name: str) -> TaskInterface:
    return TaskInterface(name=name, slugs=(f"{name}-1",), result_type="PrefectResult", persists_result=True)


NODE = FlowInterface(
    project_name=PROJECT,
    name="node",
    source=None,
    parameters=tuple(ParameterInterface(f"p{i}", float(i), False) for i in range(WIDTH)),
    tasks=(_persisting("result"), _persisting("save_db_result"), _persisting("save_file")),
)
LOCK = Lock(path="specs/flows.lock.yaml", flows={NODE.key: NODE})


@st.composite
def compositions(draw: st.DrawFn, max_steps: int = WIDTH) -> tuple[str, dict[str, set[str]]]:
    """A random valid spec over a random DAG (raw, file and db mappings, depends_on), in shuffled
    YAML order, with its DAG as step -> parents."""
    steps = draw(st.integers(min_value=1, max_value=max_steps))
    flows, dag = [], {}
    for i in range(steps):
        parents = draw(st.sets(st.integers(min_value=0, max_value=i - 1), max_size=3)) if i else set()
        flow: dict[str, Any] = {"name": "node", "project_name": PROJECT, "alias": f"s{i}"}
        mapped, depends = {}, []
        for parent in sorted(parents):
            kind = draw(st.sampled_from(["raw", "file", "db", "depends_on"]))
            if kind == "depends_on":
                depends.append(f"s{parent}")
                continue
            task = {"raw": "result", "file": "save_file", "db": "save_db_result"}[kind]
            mapping = {"parent_flow_name": f"s{parent}", "parent_task_name": task, "map_type": kind}
            if kind == "db":
                mapping["attribute_index"] = ["outputs", "value"]
            mapped[f"p{parent}"] = mapping
        if mapped:
            flow["mapped_parameters"] = mapped
        if depends:
            flow["depends_on"] = depends
        flows.append(flow)
        dag[f"s{i}"] = {f"s{p}" for p in parents}
    order = draw(st.permutations(flows))
    spec = {"name": "composed", "project_name": PROJECT, "composing_flows": list(order)}
    return yaml.safe_dump(spec, sort_keys=False), dag


def generated_flow_py(spec_text: str) -> str:
    return compile_spec(spec_text, "specs/composed.yaml", LOCK)["composed/flow.py"]


def step_edges(flow: Flow) -> dict[str, set[str]]:
    """step -> the steps whose `run` task (which ends when its child run ends) its own `run`
    task waits on, read from the graph."""
    run_fn = run_child_flow.run
    runs = {t: t.name.removeprefix("run ") for t in flow.tasks if getattr(t, "run", None) is run_fn}
    found: dict[str, set[str]] = {alias: set() for alias in runs.values()}
    for run_task, alias in runs.items():
        found[alias] = {runs[e.upstream_task] for e in flow.edges_to(run_task) if e.upstream_task in runs}
    return found


def chain_spec(steps: int) -> str:
    flows = [{"name": "node", "project_name": PROJECT, "alias": "s0"}]
    for i in range(1, steps):
        mapped = {"p0": {"parent_flow_name": f"s{i - 1}", "parent_task_name": "result"}}
        flows.append({"name": "node", "project_name": PROJECT, "alias": f"s{i}", "mapped_parameters": mapped})
    return yaml.safe_dump({"name": "composed", "project_name": PROJECT, "composing_flows": flows})


def fan_in_spec(width: int) -> str:
    flows: list[dict[str, Any]] = [
        {"name": "node", "project_name": PROJECT, "alias": f"s{i}"} for i in range(width)
    ]
    mapped = {f"p{i}": {"parent_flow_name": f"s{i}", "parent_task_name": "result"} for i in range(width)}
    flows.append({"name": "node", "project_name": PROJECT, "alias": "gather", "mapped_parameters": mapped})
    return yaml.safe_dump({"name": "composed", "project_name": PROJECT, "composing_flows": flows})


# With and without the improvement: the same flow ---------------------------------------------


@pytest.mark.parametrize("spec_path", PREFECT1_SPECS, ids=lambda p: p.stem)
def test_committed_flows_serialize_as_with_prefects_own_flow(spec_path: Path) -> None:
    name = yaml.safe_load(spec_path.read_text())["name"]
    source = (REPO / "generated" / name / "flow.py").read_text()
    assert_same_serialized_flow(source)
    flow = load_flow(source)
    assert type(flow) is IndexedFlow and type(flow.executor) is LocalThreadExecutor


@pytest.mark.parametrize(
    "spec_text",
    [chain_spec(1), chain_spec(5), chain_spec(WIDTH), fan_in_spec(3), fan_in_spec(WIDTH)],
    ids=["chain1", "chain5", "chain12", "fan_in3", "fan_in12"],
)
def test_chains_and_fan_ins_serialize_as_with_prefects_own_flow(spec_text: str) -> None:
    assert_same_serialized_flow(generated_flow_py(spec_text))


@SMALL
@given(compositions())
def test_random_compositions_keep_graph_order_and_step_edges(composition: tuple[str, dict[str, set[str]]]) -> None:
    spec_text, dag = composition
    source = generated_flow_py(spec_text)
    serialized = assert_same_serialized_flow(source)
    flow = load_flow(source)
    assert step_edges(flow) == dag
    order = flow.sorted_tasks()
    assert_valid_order(flow, order)
    assert tuple(flow) == order
    # The order is decided by slugs, not by set iteration: the same in every process.
    again = load_flow(source)
    assert [again.slugs[t] for t in again.sorted_tasks()] == [flow.slugs[t] for t in order]
    assert FlowSchema().load(serialized).name == "composed"


def test_serialized_type_names_an_importable_prefect_flow() -> None:
    """`prefect register --json` and a server keep `type` as data; it still names a real Flow class."""
    serialized = load_flow(generated_flow_py(chain_spec(3))).serialize()
    cls = from_qualified_name(serialized["type"])
    assert cls is IndexedFlow and issubclass(cls, prefect.Flow)
    loaded = FlowSchema().load(serialized)
    assert type(loaded) is Flow  # Prefect's schema loads every flow as its own Flow
    assert {t.slug for t in loaded.tasks} == {t["slug"] for t in serialized["tasks"]}
    assert len(loaded.edges) == len(serialized["edges"])


# Random DAGs of plain tasks: every query answers as Prefect's --------------------------------


@st.composite
def dags(draw: st.DrawFn, max_tasks: int = 40) -> tuple[int, list[tuple[int, int, str | None]]]:
    """(task count, edges i -> j with i < j, keyed or not)."""
    count = draw(st.integers(min_value=1, max_value=max_tasks))
    pairs = st.tuples(st.integers(0, count - 1), st.integers(0, count - 1)).filter(lambda p: p[0] < p[1])
    chosen = draw(st.lists(pairs, max_size=3 * count, unique=True)) if count > 1 else []
    return count, [(i, j, draw(st.sampled_from([None, f"x{i}"]))) for i, j in chosen]


class Node(Task):
    """Adds its inputs to its own value; fails when asked to, so failures propagate."""

    def __init__(self, value: int, fail: bool = False, **kwargs: Any) -> None:
        self.value, self.fail = value, fail
        super().__init__(**kwargs)

    def run(self, **inputs: int) -> int:  # type: ignore[override]
        if self.fail:
            raise ValueError(f"task {self.name} fails on purpose")
        return self.value + sum(inputs.values())


def build(
    cls: type[Flow], tasks: list[Task], edges: list[tuple[int, int, str | None]], name: str = "dag"
) -> Flow:
    flow = cls(name)
    for task in tasks:
        flow.add_task(task)
    for i, j, key in edges:
        flow.add_edge(tasks[i], tasks[j], key=key)
    return flow


def nodes(count: int, failing: frozenset[int] = frozenset()) -> list[Task]:
    return [Node(i, fail=i in failing, name=f"t{i % 7}") for i in range(count)]


@settings(max_examples=60, deadline=None)
@given(dags(), st.randoms(use_true_random=False))
def test_random_dags_sort_validly_and_answer_like_prefect(
    dag: tuple[int, list[tuple[int, int, str | None]]], rng: random.Random
) -> None:
    count, edges = dag
    tasks = nodes(count)
    ours, theirs = build(IndexedFlow, tasks, edges), build(Flow, tasks, edges)
    ours.validate()
    assert_valid_order(ours, ours.sorted_tasks())
    assert set(ours.sorted_tasks()) == set(theirs.sorted_tasks())
    assert ours.root_tasks() == theirs.root_tasks()
    assert ours.terminal_tasks() == theirs.terminal_tasks()
    assert ours.reference_tasks() == theirs.reference_tasks()
    assert ours.all_upstream_edges() == theirs.all_upstream_edges()
    assert ours.all_downstream_edges() == theirs.all_downstream_edges()
    for task in tasks:
        assert ours.edges_to(task) == theirs.edges_to(task)
        assert ours.edges_from(task) == theirs.edges_from(task)
        assert ours.upstream_tasks(task) == theirs.upstream_tasks(task)
        assert ours.downstream_tasks(task) == theirs.downstream_tasks(task)
    roots = rng.sample(tasks, k=rng.randint(1, count))
    subset = ours.sorted_tasks(root_tasks=roots)
    assert set(subset) == set(theirs.sorted_tasks(root_tasks=roots))
    assert_valid_order(ours, subset, set(subset))
    assert without_type(ours.serialize()) == without_type(theirs.serialize())
    # Expected edges, exactly: the ones added (constants are not edges here).
    assert {(tasks.index(e.upstream_task), tasks.index(e.downstream_task), e.key) for e in ours.edges} == set(edges)


@settings(max_examples=15, deadline=None)
@given(dags(max_tasks=12), st.data())
def test_random_dags_run_to_the_same_states_and_failures(
    dag: tuple[int, list[tuple[int, int, str | None]]], data: st.DataObject
) -> None:
    count, edges = dag
    failing = frozenset(data.draw(st.sets(st.integers(0, count - 1), max_size=2)))
    tasks = nodes(count, failing)
    ours, theirs = build(IndexedFlow, tasks, edges), build(Flow, tasks, edges)
    # The improved path as generated flows run it, against the executor they used before.
    ours_state = ours.run(executor=LocalThreadExecutor())
    theirs_state = theirs.run(executor=LocalDaskExecutor(scheduler="threads"))
    assert type(ours_state) is type(theirs_state)
    assert ours_state.is_failed() == bool(failing)
    for task in tasks:
        ours_task, theirs_task = ours_state.result[task], theirs_state.result[task]
        assert type(ours_task) is type(theirs_task), (task, ours_task, theirs_task)
        if ours_task.is_successful():
            assert ours_task.result == theirs_task.result


def test_a_failing_child_fails_the_composition_and_skips_its_descendants() -> None:
    """Same failure semantics on the improved path: downstream of a failure ends TriggerFailed."""
    tasks = nodes(4, failing=frozenset({1}))
    flow = build(IndexedFlow, tasks, [(0, 1, None), (1, 2, "x1"), (0, 3, None)])
    state = flow.run(executor=LocalThreadExecutor())
    assert state.is_failed()
    states = state.result
    assert states[tasks[0]].is_successful() and states[tasks[3]].is_successful()
    assert states[tasks[1]].is_failed() and "fails on purpose" in str(states[tasks[1]].result)
    assert type(states[tasks[2]]).__name__ == "TriggerFailed"


# Cycles are still impossible -----------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(dags(), st.data())
def test_a_cycle_in_a_random_dag_cannot_be_sorted_serialized_or_added(
    dag: tuple[int, list[tuple[int, int, str | None]]], data: st.DataObject
) -> None:
    count, edges = dag
    if count < 2:
        count, edges = 2, []
    i = data.draw(st.integers(0, count - 2))
    j = data.draw(st.integers(i + 1, count - 1))
    tasks = nodes(count)
    flow = build(IndexedFlow, tasks, [*edges, (i, j, None)])
    assert_valid_order(flow, flow.sorted_tasks())  # cached now; the back edge must invalidate it
    flow.add_edge(tasks[j], tasks[i])
    with pytest.raises(ValueError, match="Cycle found; flows must be acyclic!"):
        flow.sorted_tasks()
    with pytest.raises(ValueError, match="Cycle found"):
        flow.validate()
    with pytest.raises(ValueError, match="Cycle found"):
        flow.serialize()
    fresh = build(IndexedFlow, tasks, [*edges, (i, j, None)])
    with pytest.raises(ValueError, match="Cycle found"):
        fresh.add_edge(tasks[j], tasks[i], validate=True)


def test_edges_added_behind_prefects_back_are_seen() -> None:
    """A caller that grows `flow.edges` directly (no cache clear) still gets a fresh index."""
    tasks = nodes(3)
    flow = build(IndexedFlow, tasks, [(0, 1, None), (1, 2, None)])
    assert flow.sorted_tasks() == tuple(tasks)
    flow.edges.add(Edge(tasks[2], tasks[0]))
    with pytest.raises(ValueError, match="Cycle found"):
        flow.sorted_tasks()


@SMALL
@given(compositions(max_steps=8), st.data())
def test_a_spec_with_a_cycle_is_rejected_before_any_flow_exists(
    composition: tuple[str, dict[str, set[str]]], data: st.DataObject
) -> None:
    spec_text, dag = composition
    spec = yaml.safe_load(spec_text)
    ancestors = {step: _ancestors(dag, step) for step in dag}
    candidates = sorted((a, d) for d in dag for a in ancestors[d]) + [(s, s) for s in sorted(dag)]
    ancestor, descendant = data.draw(st.sampled_from(candidates))
    flow = next(f for f in spec["composing_flows"] if f["alias"] == ancestor)
    flow["depends_on"] = [*flow.get("depends_on", []), descendant]
    with pytest.raises(CompileError) as error:
        generated_flow_py(yaml.safe_dump(spec, sort_keys=False))
    assert any("cycle:" in d.message for d in error.value.diagnostics)


def _ancestors(dag: dict[str, set[str]], step: str) -> set[str]:
    found: set[str] = set()
    frontier = list(dag[step])
    while frontier:
        parent = frontier.pop()
        if parent not in found:
            found.add(parent)
            frontier.extend(dag[parent])
    return found


def test_prefect_cli_refuses_to_build_a_cyclic_indexed_flow(tmp_path: Path) -> None:
    script = tmp_path / "cyclic.py"
    script.write_text(
        textwrap.dedent(
            """
            from prefect import task
            from prefect.storage import Local

            from compiler.runtime import IndexedFlow, LocalThreadExecutor


            @task
            def step(x=None):
                return x


            with IndexedFlow("cyclic", storage=Local(path="/opt/flowc/flow.py", stored_as_script=True)) as flow:
                a = step()
                b = step(a)
            flow.add_edge(b, a)
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "build", "-p", str(script), "-o", str(tmp_path / "out.json")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "Cycle found" in result.stdout + result.stderr
    out = tmp_path / "out.json"
    assert not out.exists() or json.loads(out.read_text())["flows"] == []


# Scale: what Prefect's sort could not do -----------------------------------------------------


def test_a_long_chain_validates_and_serializes_in_linear_time() -> None:
    """20 000 chained tasks: Prefect's sort needs ~n^3/2 membership tests (hours); ours, n."""
    count = 20_000
    tasks = [Node(i, name="link") for i in range(count)]
    flow = IndexedFlow("long")
    for upstream, downstream in zip(tasks, tasks[1:]):
        flow.add_edge(upstream, downstream, key="x")
    started = time.process_time()  # CPU, not wall: a loaded CI machine makes a process wait for a core
    flow.validate()
    order = flow.sorted_tasks()
    elapsed = time.process_time() - started
    assert order == tuple(tasks)
    assert flow.root_tasks() == {tasks[0]} and flow.reference_tasks() == {tasks[-1]}
    assert elapsed < 10.0, f"validate() of a {count}-task chain took {elapsed:.1f} s of CPU"


def test_generated_module_runs_with_prefects_runner_from_the_sorted_order() -> None:
    """The FlowRunner walks `sorted_tasks()` and `edges_to()`: a generated flow's run on the
    indexed path, with its own executor, reaches every run_child_flow with its parameters."""
    flow = load_flow(generated_flow_py(chain_spec(4)))
    started = stub_backend(flow)
    state = flow.run()
    assert state.is_successful(), state
    assert [name for name, _ in started] == ["run s0", "run s1", "run s2", "run s3"]
    by_name = dict(started)
    assert by_name["run s1"]["p0"] == "id-run s0:result-1"
    assert by_name["run s0"]["p5"] == 5.0


# LocalThreadExecutor ---------------------------------------------------------------------------


class RecordingExecutor(LocalThreadExecutor):
    """Notes which task each submitted job runs, in the order the jobs start."""

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers)
        self.started: list[Task] = []

    def submit(self, fn: Any, *args: Any, extra_context: dict | None = None, **kwargs: Any) -> Any:
        task = kwargs.get("task")

        def noted(*a: Any, **k: Any) -> Any:
            if task is not None:
                self.started.append(task)
            return fn(*a, **k)

        return super().submit(noted, *args, extra_context=extra_context, **kwargs)


def stub_backend(flow: Flow) -> list[tuple[str, dict]]:
    """Stand-ins for the Prefect Server (which cannot run here) behind the orchestration tasks."""
    started: list[tuple[str, dict]] = []
    for task in flow.tasks:
        if getattr(task, "run", None) is run_child_flow.run:

            def fake_run(flow_name=None, project_name="", parameters=None, _name=task.name, **_: Any) -> str:
                started.append((_name, dict(parameters or {})))
                return f"id-{_name}"

            task.run = fake_run  # type: ignore[method-assign]
        elif task.name == "get_task_run_result":
            task.run = lambda flow_run_id, task_slug, **_: f"{flow_run_id}:{task_slug}"  # type: ignore[method-assign]
    return started


def test_one_thread_runs_tasks_in_sorted_order_so_the_first_child_starts_first() -> None:
    """Ready tasks start in submission (= sorted) order: the first child flow run starts right
    after its own inputs, before the parameters of the other steps are even read."""
    flow = load_flow(generated_flow_py(fan_in_spec(6)))
    started = stub_backend(flow)
    executor = RecordingExecutor(max_workers=1)
    assert flow.run(executor=executor).is_successful()
    assert executor.started == list(flow.sorted_tasks())
    names = [t.name for t in executor.started]
    first_run = names.index("run s0")
    assert all(not n.startswith(("s1-", "s5-", "gather-")) for n in names[:first_run]), names[: first_run + 1]
    assert [name for name, _ in started] == [f"run s{i}" for i in range(6)] + ["run gather"]


def test_independent_tasks_all_run_at_once_beyond_the_core_count() -> None:
    """40 tasks that each block until all 40 are running (as 40 `run_child_flow`s block on
    their children): threads are started as tasks become ready, so none is left queued."""
    width = 40
    barrier = threading.Barrier(width, timeout=20)

    class Blocking(Task):
        def run(self) -> int:  # type: ignore[override]
            return barrier.wait()

    flow = IndexedFlow("wide")
    for i in range(width):
        flow.add_task(Blocking(name=f"b{i}"))
    state = flow.run(executor=LocalThreadExecutor())
    assert state.is_successful(), [s for s in state.result.values() if not s.is_successful()][:1]
    assert sorted(s.result for s in state.result.values()) == list(range(width))


def test_max_workers_bounds_the_threads() -> None:
    barrier = threading.Barrier(2, timeout=1)

    class Blocking(Task):
        def run(self) -> int:  # type: ignore[override]
            return barrier.wait()

    flow = IndexedFlow("two")
    flow.add_task(Blocking(name="a"))
    flow.add_task(Blocking(name="b"))
    state = flow.run(executor=LocalThreadExecutor(max_workers=1))
    assert state.is_failed()
    assert all("BrokenBarrierError" in repr(s.result) for s in state.result.values())


def test_wait_resolves_nested_futures_and_an_early_exit_cancels_what_has_not_started() -> None:
    executor = LocalThreadExecutor(max_workers=2)
    release = threading.Event()
    with executor.start():
        first = executor.submit(lambda: 1)
        second = executor.submit(lambda a, b: a + b[0]["v"], first, [{"v": first}])
        assert executor.wait({"x": [second, (first,)], "y": {first}}) == {"x": [2, (1,)], "y": {1}}
    running = threading.Event()

    def block() -> bool:
        running.set()
        return release.wait()

    with pytest.raises(KeyboardInterrupt):
        with executor.start():
            blocked = executor.submit(block)
            after = executor.submit(lambda _: "never", blocked)
            assert running.wait(timeout=5)
            raise KeyboardInterrupt
    release.set()
    assert blocked.result(timeout=5) is True
    futures.wait([after], timeout=5)
    assert after.cancelled()
    with pytest.raises(RuntimeError, match="outside its start"):
        executor.submit(lambda: 1)


def test_executor_and_flow_survive_pickling() -> None:
    """Prefect pickles flows (`flow.save()`, some storages); the executor's threads are not state."""
    import cloudpickle

    flow = load_flow(generated_flow_py(chain_spec(3)))
    copy = cloudpickle.loads(cloudpickle.dumps(flow))
    assert type(copy) is IndexedFlow and type(copy.executor) is LocalThreadExecutor
    assert [copy.slugs[t] for t in copy.sorted_tasks()] == [flow.slugs[t] for t in flow.sorted_tasks()]
    assert without_type(copy.serialize()) == without_type(load_flow(generated_flow_py(chain_spec(3)), Flow).serialize())
