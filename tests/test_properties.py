"""Property tests (hypothesis): random valid specs compile into flows whose graph is the spec's
DAG, byte for byte the same every time; random mutations into invalid specs always end in
located diagnostics (CompileError in-process, exit 1 from the CLI), never in another exception.

The lock is synthetic and in memory (compile_spec is pure), with child flows of different shapes:
required and optional parameters, tasks named once or several times, results that persist and
one that does not.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import black
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from prefect import Flow, Task

from benchmarks import synthetic
from compiler.cli import main
from compiler.compile import compile_spec
from compiler.diagnostics import CompileError
from compiler.lock import FlowInterface, Lock, ParameterInterface, TaskInterface, render_lock
from compiler.runtime import run_child_flow
from compiler.targets.common import BLACK_MODE_ARGS

REPO = Path(__file__).resolve().parents[1]

SPEC_PATH = "specs/random.yaml"
# Moderate example counts: the whole suite runs on 2 cores. Failures print a reproducing example.
BUILDS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MUTATIONS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CLI = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _task(name: str, slugs: int = 1, persists: bool = True) -> TaskInterface:
    return TaskInterface(
        name=name,
        slugs=tuple(f"{name}-{i}" for i in range(1, slugs + 1)),
        result_type="PrefectResult" if persists else None,
        persists_result=persists,
    )


CHILDREN = (
    FlowInterface(
        project_name="lume",
        name="simulate",
        source="children.simulate:flow",
        parameters=(
            ParameterInterface("n_particle", 1000, False),
            ParameterInterface("input_file", None, True),
            ParameterInterface("label", "run", False),
        ),
        tasks=(_task("result"), _task("save_db_result"), _task("save_file"), _task("scratch", persists=False)),
    ),
    FlowInterface(
        project_name="lume",
        name="analyse",
        source=None,
        parameters=(ParameterInterface("value", None, True), ParameterInterface("threshold", 1e-6, False)),
        tasks=(_task("report"), _task("stage", slugs=2)),
    ),
    FlowInterface(
        project_name="other-project",
        name="Scale Flow",  # a Prefect name that is not an identifier: steps need an alias
        source=None,
        parameters=(
            ParameterInterface("value", 1.0, False),
            ParameterInterface("factor", 2.0, False),
            ParameterInterface("weights", [1, 2, 3], False),
        ),
        tasks=(_task("scale"), _task("save_db_result")),
    ),
)
LOCK = Lock(path="specs/flows.lock.yaml", flows={flow.key: flow for flow in CHILDREN})


def persisting_sources(child: FlowInterface) -> list[tuple[str, str]]:
    """(key, value) pairs that name a persisted task result: by name when it has one slug."""
    sources = []
    for task in child.tasks:
        if not task.persists_result:
            continue
        if len(task.slugs) == 1:
            sources.append(("parent_task_name", task.name))
        sources.extend(("parent_task_slug", slug) for slug in task.slugs)
    return sources


json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
attribute_keys = st.integers(-3, 10) | st.text(min_size=1, max_size=10)
identifiers = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,15}", fullmatch=True)
prefect_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,20}", fullmatch=True)
labels = st.from_regex(r"[a-z0-9][a-z0-9._/-]{0,15}", fullmatch=True)


@st.composite
def random_specs(draw: st.DrawFn, max_steps: int = 40) -> tuple[dict[str, Any], dict[str, set[str]]]:
    """A valid spec as data, over a random DAG in shuffled YAML order, and that DAG (step -> parents)."""
    count = draw(st.integers(min_value=1, max_value=max_steps))
    prefix = draw(st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True))
    steps: list[dict[str, Any]] = []
    dag: dict[str, set[str]] = {}
    kinds: list[FlowInterface] = []
    for index in range(count):
        alias = f"{prefix}{index}"  # ends in a digit: never a keyword, never a reserved name
        child = draw(st.sampled_from(CHILDREN))
        step: dict[str, Any] = {"name": child.name, "project_name": child.project_name, "alias": alias}
        if child.source and draw(st.booleans()):
            step["source"] = child.source
        parents = draw(st.lists(st.integers(0, index - 1), max_size=3, unique=True)) if index else []
        free = [p.name for p in child.parameters]
        mapped: dict[str, Any] = {}
        depends_on: list[str] = []
        for parent_index in parents:
            parent_alias = steps[parent_index]["alias"]
            if free and draw(st.booleans()):
                parameter = free.pop(draw(st.integers(0, len(free) - 1)))
                key, task = draw(st.sampled_from(persisting_sources(kinds[parent_index])))
                mapping: dict[str, Any] = {"parent_flow_name": parent_alias, key: task}
                map_type = draw(st.sampled_from(["raw", "file", "db", None]))
                if map_type is not None:
                    mapping["map_type"] = map_type
                if map_type == "db":
                    if draw(st.booleans()):
                        mapping["attribute"] = draw(st.sampled_from(["outputs", "inputs"]))
                        mapping["attribute_index"] = draw(st.lists(attribute_keys, max_size=3))
                    else:
                        mapping["attribute_index"] = draw(st.lists(attribute_keys, min_size=1, max_size=3))
                if draw(st.booleans()):
                    mapping["parent_project_name"] = kinds[parent_index].project_name
                mapped[parameter] = mapping
            else:
                depends_on.append(parent_alias)
        overrides = draw(st.lists(st.sampled_from(free), unique=True, max_size=len(free))) if free else []
        if overrides:
            step["parameters"] = {name: draw(json_values) for name in overrides}
        if mapped:
            step["mapped_parameters"] = mapped
        if depends_on:
            step["depends_on"] = depends_on
        steps.append(step)
        kinds.append(child)
        dag[alias] = {steps[p]["alias"] for p in parents}
    spec: dict[str, Any] = {"name": draw(identifiers), "project_name": draw(prefect_names)}
    if draw(st.booleans()):
        spec["labels"] = draw(st.lists(labels, max_size=3))
    if draw(st.booleans()):
        spec["run_config"] = draw(st.sampled_from(["docker", "kubernetes"]))
    if draw(st.booleans()):
        spec["env"] = draw(st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True), st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF, blacklist_categories=("Cc",)), max_size=12), max_size=3))
    spec["composing_flows"] = draw(st.permutations(steps))
    return spec, dag


def dump(spec: dict[str, Any]) -> str:
    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100)


# The flow that a spec compiles into -------------------------------------------------------------


def load_flow(source: str) -> Flow:
    namespace: dict[str, Any] = {"__name__": "generated_flow"}
    exec(compile(source, "flow.py", "exec"), namespace)
    flow = namespace["flow"]
    assert isinstance(flow, Flow)
    return flow


def assert_black_fixpoint(source: str) -> None:
    """flowc runs black's first pass only (compiler/targets/common.py): the result must be final."""
    mode = black.Mode(target_versions={black.TargetVersion.PY310}, **BLACK_MODE_ARGS)
    assert black.format_str(source, mode=mode) == source


def test_every_committed_flow_and_large_shapes_are_black_fixpoints() -> None:
    for path in sorted(REPO.glob("generated/*/flow.py")):
        assert_black_fixpoint(path.read_text())
    lock = synthetic.synthetic_lock(gather_widths=(59,))
    for text in (synthetic.chain_spec("chain", 60), synthetic.fan_in_spec("fan", 60), synthetic.mixed_spec("mixed", 60, 1)):
        for name, body in compile_spec(text, SPEC_PATH, lock).items():
            if name.endswith("flow.py"):
                assert_black_fixpoint(body)


def upstream_map(flow: Flow) -> dict[Task, set[Task]]:
    parents: dict[Task, set[Task]] = {task: set() for task in flow.tasks}
    for edge in flow.edges:
        parents[edge.downstream_task].add(edge.upstream_task)
    return parents


def ancestors(task: Task, parents: dict[Task, set[Task]], stop: set[Task] = frozenset()) -> set[Task]:
    """Every task upstream of `task`; the walk does not continue past tasks in `stop`."""
    seen: set[Task] = set()
    stack = list(parents[task])
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        if current not in stop:
            stack.extend(parents[current])
    return seen


def flow_graph(flow: Flow, aliases: list[str]) -> tuple[dict[str, set[str]], dict[str, set[str]], dict[str, Task]]:
    """The step graph as the flow holds it.

    For each step's `run_child_flow` task (it ends when its child run has ended): its *direct*
    parent steps are those whose `run_child_flow` is reached walking upstream without passing
    through another step's; its *transitive* parents are all steps whose `run_child_flow` is upstream.
    """
    runs = {alias: _one(flow, f"run {alias}") for alias in aliases}
    step_of = {task: alias for alias, task in runs.items()}
    parents = upstream_map(flow)
    direct = {alias: {step_of[t] for t in ancestors(runs[alias], parents, stop=set(step_of)) if t in step_of} for alias in aliases}
    transitive = {alias: {step_of[t] for t in ancestors(runs[alias], parents) if t in step_of} for alias in aliases}
    return direct, transitive, runs


def _one(flow: Flow, name: str) -> Task:
    found = [task for task in flow.tasks if task.name == name]
    assert len(found) == 1, f"one task named {name!r}"
    return found[0]


def closure(dag: dict[str, set[str]]) -> dict[str, set[str]]:
    result: dict[str, set[str]] = {}

    def visit(alias: str) -> set[str]:
        if alias not in result:
            result[alias] = set()
            for parent in dag[alias]:
                result[alias] |= {parent} | visit(parent)
        return result[alias]

    for alias in dag:
        visit(alias)
    return result


@BUILDS
@given(random_specs())
def test_a_random_valid_spec_builds_a_flow_whose_edges_are_the_spec_dag(case: tuple[dict[str, Any], dict[str, set[str]]]) -> None:
    text = dump(case[0])
    spec, dag = yaml.safe_load(text), case[1]  # the values as YAML gives them back
    files = compile_spec(text, SPEC_PATH, LOCK)
    assert set(files) == {f"{spec['name']}/{name}" for name in ("flow.py", "Dockerfile", "README.md")}
    assert_black_fixpoint(files[f"{spec['name']}/flow.py"])
    flow = load_flow(files[f"{spec['name']}/flow.py"])
    assert flow.name == spec["name"]
    direct, transitive, runs = flow_graph(flow, list(dag))
    assert direct == dag
    assert transitive == closure(dag)
    parents = upstream_map(flow)
    by_alias = {step["alias"]: step for step in spec["composing_flows"]}
    for alias, step in by_alias.items():
        run_ancestors = ancestors(runs[alias], parents)
        # A child starts only after each parent's run has finished, and succeeded: run_child_flow
        # fails unless its child run (or a retry of it) succeeded.
        for parent in dag[alias]:
            assert runs[parent] in run_ancestors
            assert runs[parent].run is run_child_flow.run
        assert_mapped_values_reach_the_child(flow, parents, runs, alias, by_alias)
        assert_unmapped_parameters_are_composite(flow, alias, step)


def assert_mapped_values_reach_the_child(
    flow: Flow, parents: dict[Task, set[Task]], runs: dict[str, Task], alias: str, by_alias: dict[str, dict[str, Any]]
) -> None:
    """Each mapping is a get_task_run_result of the right parent run and slug, loaded for db."""
    run_ancestors = ancestors(runs[alias], parents)
    results = [t for t in run_ancestors if t.name == "get_task_run_result"]
    for parameter, mapping in by_alias[alias].get("mapped_parameters", {}).items():
        parent_step = by_alias[mapping["parent_flow_name"]]
        slug = mapping.get("parent_task_slug") or _only_slug(parent_step, mapping["parent_task_name"])
        matching = {
            t
            for t in results
            if flow.constants[t].get("task_slug") == slug and runs[mapping["parent_flow_name"]] in parents[t]
        }
        assert matching, f"{alias}.{parameter} <- {mapping}"
        if mapping.get("map_type") == "db":
            expected = ([mapping["attribute"]] if "attribute" in mapping else []) + list(mapping["attribute_index"])
            loaders = [t for t in run_ancestors if t.name == "load_db_result" and matching & parents[t]]
            assert expected in [flow.constants[t]["attribute_index"] for t in loaders], f"{alias}.{parameter}"


def _only_slug(step: dict[str, Any], task_name: str) -> str:
    child = LOCK.get(step["project_name"], step["name"])
    assert child is not None
    task = child.task_named(task_name)
    assert task is not None and len(task.slugs) == 1
    return task.slugs[0]


def assert_unmapped_parameters_are_composite(flow: Flow, alias: str, step: dict[str, Any]) -> None:
    """LUME's renaming: every child parameter that is not mapped is `<alias>-<param>`, with its default."""
    child = LOCK.get(step["project_name"], step["name"])
    assert child is not None
    composite = {p.name: p for p in flow.parameters() if p.name.startswith(f"{alias}-")}
    mapped = set(step.get("mapped_parameters", {}))
    expected = {f"{alias}-{p.name}" for p in child.parameters if p.name not in mapped}
    assert set(composite) == expected
    for parameter in child.parameters:
        if parameter.name in mapped:
            continue
        built = composite[f"{alias}-{parameter.name}"]
        overrides = step.get("parameters", {})
        if parameter.name in overrides:
            assert built.default == overrides[parameter.name] and not built.required
        else:
            assert built.required == parameter.required
            if not parameter.required:
                assert built.default == parameter.default


@BUILDS
@given(random_specs(max_steps=12))
def test_output_is_byte_stable_across_runs_and_lock_order(case: tuple[dict[str, Any], dict[str, set[str]]]) -> None:
    text = dump(case[0])
    first = compile_spec(text, SPEC_PATH, LOCK)
    reordered = Lock(path=LOCK.path, flows=dict(reversed(list(LOCK.flows.items()))))
    assert compile_spec(text, SPEC_PATH, reordered) == first
    assert compile_spec(text, SPEC_PATH, LOCK) == first
    for body in first.values():
        assert "\r" not in body and body.endswith("\n")


# Invalid specs --------------------------------------------------------------------------------

MUTATIONS_BY_NAME = (
    "drop_required_top_key",
    "drop_required_step_key",
    "unknown_key",
    "wrong_type",
    "unsafe_name",
    "unknown_parent",
    "cycle",
    "self_dependency",
    "duplicate_alias",
    "unknown_mapped_parameter",
    "override_of_a_mapped_parameter",
    "unknown_task",
    "unknown_slug",
    "bad_map_type",
    "db_without_attribute_index",
    "attribute_index_on_raw",
    "not_in_lock",
    "name_and_slug",
    "non_finite_default",
    "empty_flows",
    "wrong_parent_project",
    "unknown_override",
    "task_with_several_slugs_by_name",
    "unpersisted_task",
)


def _steps_with_mappings(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in spec["composing_flows"] if s.get("mapped_parameters")]


def mutate(draw: st.DrawFn, spec: dict[str, Any], kind: str) -> dict[str, Any]:
    """`spec` made invalid in the way `kind` names (hypothesis rejects kinds that do not apply)."""
    spec = copy.deepcopy(spec)
    steps = spec["composing_flows"]
    step = draw(st.sampled_from(steps))
    mapped_steps = _steps_with_mappings(spec)
    if kind == "drop_required_top_key":
        del spec[draw(st.sampled_from(["name", "project_name", "composing_flows"]))]
    elif kind == "drop_required_step_key":
        del step[draw(st.sampled_from(["name", "project_name"]))]
    elif kind == "unknown_key":
        target = draw(st.sampled_from(["top", "step"] + (["mapping"] if mapped_steps else [])))
        holder = spec if target == "top" else step if target == "step" else next(iter(mapped_steps[0]["mapped_parameters"].values()))
        holder[draw(st.sampled_from(["nmae", "project", "mapped_parameter", "map-type", "extra"]))] = 1
    elif kind == "wrong_type":
        field = draw(st.sampled_from(["name", "project_name", "labels", "composing_flows", "env", "run_config"]))
        spec[field] = draw(st.sampled_from([7, 2.5, True, None, {"a": 1}] + ([["x"]] if field != "labels" else [[{"a": 1}]])))
    elif kind == "unsafe_name":
        spec["name"] = draw(st.sampled_from(["..", "../x", "/etc/x", "a b", "1abc", "a-b", "x;import os", "a" * 101, ""]))
    elif kind == "unknown_parent":
        assume(mapped_steps)
        mapping = next(iter(mapped_steps[0]["mapped_parameters"].values()))
        mapping["parent_flow_name"] = "nosuchstep"
    elif kind == "cycle":
        assume(mapped_steps or any(s.get("depends_on") for s in steps))
        child = (mapped_steps or [s for s in steps if s.get("depends_on")])[0]
        parent_alias = next(iter(child["mapped_parameters"].values()))["parent_flow_name"] if child.get("mapped_parameters") else child["depends_on"][0]
        parent = next(s for s in steps if s["alias"] == parent_alias)
        parent.setdefault("depends_on", []).append(child["alias"])
    elif kind == "self_dependency":
        step.setdefault("depends_on", []).append(step["alias"])
    elif kind == "duplicate_alias":
        assume(len(steps) >= 2)
        steps[1]["alias"] = steps[0]["alias"]
    elif kind == "unknown_mapped_parameter":
        assume(mapped_steps)
        mapped = mapped_steps[0]["mapped_parameters"]
        mapped["no_such_parameter"] = mapped.pop(next(iter(mapped)))
    elif kind == "override_of_a_mapped_parameter":
        assume(mapped_steps)
        mapped_steps[0].setdefault("parameters", {})[next(iter(mapped_steps[0]["mapped_parameters"]))] = 1
    elif kind in ("unknown_task", "unknown_slug", "name_and_slug", "task_with_several_slugs_by_name", "unpersisted_task"):
        assume(mapped_steps)
        mapping = next(iter(mapped_steps[0]["mapped_parameters"].values()))
        for key in ("parent_task_name", "parent_task_slug"):
            mapping.pop(key, None)
        if kind == "unknown_task":
            mapping["parent_task_name"] = "no_such_task"
        elif kind == "unknown_slug":
            mapping["parent_task_slug"] = "result-9"
        elif kind == "name_and_slug":
            mapping["parent_task_name"], mapping["parent_task_slug"] = "result", "result-1"
        else:
            parent = next(s for s in steps if s["alias"] == mapping["parent_flow_name"])
            wanted = {"task_with_several_slugs_by_name": ("analyse", "stage"), "unpersisted_task": ("simulate", "scratch")}[kind]
            assume(parent["name"] == wanted[0])
            mapping["parent_task_name"] = wanted[1]
    elif kind == "bad_map_type":
        assume(mapped_steps)
        next(iter(mapped_steps[0]["mapped_parameters"].values()))["map_type"] = draw(st.sampled_from(["Raw", "files", "database", "", 1]))
    elif kind == "db_without_attribute_index":
        assume(mapped_steps)
        mapping = next(iter(mapped_steps[0]["mapped_parameters"].values()))
        mapping["map_type"] = "db"
        mapping.pop("attribute_index", None)
        mapping.pop("attribute", None)
    elif kind == "attribute_index_on_raw":
        assume(mapped_steps)
        mapping = next(iter(mapped_steps[0]["mapped_parameters"].values()))
        mapping["map_type"] = draw(st.sampled_from(["raw", "file"]))
        mapping["attribute_index"] = ["outputs"]
    elif kind == "not_in_lock":
        step["project_name"] = "no-such-project"
    elif kind == "non_finite_default":
        simulations = [s for s in steps if s["name"] == "simulate"]
        assume(simulations)
        value = draw(st.sampled_from([float("inf"), float("-inf"), float("nan")]))
        simulations[0]["parameters"] = {**simulations[0].get("parameters", {}), "n_particle": [1, {"x": value}]}
    elif kind == "empty_flows":
        spec["composing_flows"] = []
    elif kind == "wrong_parent_project":
        assume(mapped_steps)
        next(iter(mapped_steps[0]["mapped_parameters"].values()))["parent_project_name"] = "elsewhere"
    elif kind == "unknown_override":
        step["parameters"] = {**step.get("parameters", {}), "no_such_parameter": 1}
    return spec


@st.composite
def invalid_specs(draw: st.DrawFn) -> tuple[str, str]:
    spec, _ = draw(random_specs(max_steps=8))
    kind = draw(st.sampled_from(MUTATIONS_BY_NAME))
    return kind, dump(mutate(draw, spec, kind))


def assert_located(error: CompileError, text: str) -> None:
    assert error.diagnostics, "at least one diagnostic"
    lines = text.count("\n") + 1
    for diagnostic in error.diagnostics:
        assert diagnostic.path == SPEC_PATH
        assert 1 <= diagnostic.line <= lines, diagnostic
        assert diagnostic.col >= 1
        assert diagnostic.message and "\n" not in diagnostic.message
        assert "Traceback" not in diagnostic.message


@MUTATIONS
@given(invalid_specs())
def test_a_mutated_spec_is_always_located_diagnostics(case: tuple[str, str]) -> None:
    kind, text = case
    with pytest.raises(CompileError) as raised:
        compile_spec(text, SPEC_PATH, LOCK)
    assert_located(raised.value, text)


CORRUPTIONS = st.sampled_from([":", "[", "{", "]", "}", "- ", "\t", "&a ", "*a", "!!python/object:os.system ", "\"", "'", "? ", "|", ">", "%", "@", "`", "\x00", "\x85", "---\n", "<<: *a\n", "\n  ", "#"])


@MUTATIONS
@given(random_specs(max_steps=6), st.lists(st.tuples(st.floats(0, 1), CORRUPTIONS), min_size=1, max_size=4))
def test_corrupted_yaml_either_compiles_or_is_located_diagnostics(
    case: tuple[dict[str, Any], dict[str, set[str]]], edits: list[tuple[float, str]]
) -> None:
    text = dump(case[0])
    for where, fragment in edits:
        position = int(where * len(text))
        text = text[:position] + fragment + text[position:]
    try:
        files = compile_spec(text, SPEC_PATH, LOCK)
    except CompileError as error:
        assert_located(error, text)
    else:
        assert all(body.endswith("\n") for body in files.values())


# The same through the command line ---------------------------------------------------------------

ERROR_LINE = re.compile(r"^specs/random\.yaml:\d+:\d+: error: \S.*$")


@contextlib.contextmanager
def project_with(text: str, root: Path) -> Iterator[Path]:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text("[tool.flowc]\n")
    (root / "specs").mkdir()
    (root / "specs" / "flows.lock.yaml").write_text(render_lock(CHILDREN))
    (root / "specs" / "random.yaml").write_text(text, encoding="utf-8")
    with contextlib.chdir(root):
        yield root


@CLI
@given(invalid_specs())
def test_flowc_generate_on_a_mutated_spec_exits_1_with_located_errors_only(tmp_path_factory: pytest.TempPathFactory, case: tuple[str, str]) -> None:
    kind, text = case
    root = tmp_path_factory.mktemp("cli") / "project"
    with project_with(text, root):
        result = CliRunner().invoke(main, ["generate"])
    assert result.exit_code == 1, (kind, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if line]
    assert lines and re.fullmatch(r"\d+ errors?; nothing was written", lines[-1]), result.stderr
    assert all(ERROR_LINE.match(line) for line in lines[:-1]), result.stderr
    assert "Traceback" not in result.output
    assert not (root / "generated").exists()
