"""Issue 11 item 18: spec names that become one Python name are the compiler's to resolve.

Aliases and child parameters that read as the same Python name (`a`+`b_c` vs `a_b`+`c`, one
child's `a:b` and `a/b`), or as a name the module imports (`create_flow` -> `create_flow_run`),
compile; flow.py defines each name once and wires every child parameter to its own value.
"""

from __future__ import annotations

import ast
import builtins
import keyword
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.compile import compile_spec
from compiler.lock import FlowInterface, Lock, ParameterInterface, TaskInterface
from compiler.names import MODULE_NAMES

SPEC_PATH = "specs/names.yaml"


def _child(name: str, parameters: list[str]) -> FlowInterface:
    return FlowInterface(
        project_name="p",
        name=name,
        source=None,
        parameters=tuple(ParameterInterface(n, 0, False) for n in parameters),
        tasks=(TaskInterface(name="out", slugs=("out-1",), result_type="PrefectResult", persists_result=True),),
    )


def _lock(*children: FlowInterface) -> Lock:
    return Lock(path="specs/flows.lock.yaml", flows={f"p/{c.name}": c for c in children})


def _spec(steps: list[dict[str, Any]]) -> str:
    flows = [{"project_name": "p", **step} for step in steps]
    return yaml.safe_dump({"name": "names", "project_name": "p", "composing_flows": flows}, sort_keys=False)


def _flow_py(steps: list[dict[str, Any]], lock: Lock) -> str:
    return compile_spec(_spec(steps), SPEC_PATH, lock)["names/flow.py"]


def _wiring(source: str) -> dict[str, dict[str, tuple[str, str]]]:
    """{alias: {child parameter: ("parameter", composite name) | ("mapped", parent alias)}} as
    flow.py wires it, after checking that each name it defines is defined once and is not reserved."""
    tree = ast.parse(source)
    body = next(node for node in tree.body if isinstance(node, ast.With)).body
    defined: dict[str, ast.Call] = {}
    for node in body:
        assert isinstance(node, ast.Assign) and isinstance(node.value, ast.Call), ast.dump(node)
        (target,) = node.targets
        assert isinstance(target, ast.Name)
        name = target.id
        assert name not in defined, f"{name} is defined twice"
        assert name not in MODULE_NAMES and not keyword.iskeyword(name) and not hasattr(builtins, name), name
        defined[name] = node.value
    run_of = {}  # run variable -> alias
    for name, call in defined.items():
        if getattr(call.func, "id", None) == "run_child_flow":
            task_args = next(k.value for k in call.keywords if k.arg == "task_args")
            run_of[name] = ast.literal_eval(task_args)["name"].removeprefix("run ")
    wiring: dict[str, dict[str, tuple[str, str]]] = {}
    for name, alias in run_of.items():
        parameters = next(k.value for k in defined[name].keywords if k.arg == "parameters")
        assert isinstance(parameters, ast.Dict)
        wired = {}
        for key, value in zip(parameters.keys, parameters.values):
            assert isinstance(key, ast.Constant) and isinstance(value, ast.Name)
            origin = defined[value.id]
            if origin.func.id == "Parameter":  # type: ignore[attr-defined]
                wired[key.value] = ("parameter", ast.literal_eval(origin.args[0]))
            else:
                assert origin.func.id == "get_task_run_result"  # type: ignore[attr-defined]
                wired[key.value] = ("mapped", run_of[origin.args[0].id])  # type: ignore[attr-defined]
        wiring[alias] = wired
    return wiring


def test_aliases_that_join_into_one_python_name_both_compile() -> None:
    lock = _lock(_child("pair", ["b_c", "c"]))
    source = _flow_py([{"name": "pair", "alias": "a"}, {"name": "pair", "alias": "a_b"}], lock)
    assert "    a_b_c = Parameter(\"a-b_c\", default=0)\n" in source  # the first keeps the spec's name
    assert "    a_b_c_2 = Parameter(\"a_b-c\", default=0)\n" in source
    assert _wiring(source) == {
        "a": {"b_c": ("parameter", "a-b_c"), "c": ("parameter", "a-c")},
        "a_b": {"b_c": ("parameter", "a_b-b_c"), "c": ("parameter", "a_b-c")},
    }


def test_parameters_that_differ_only_in_punctuation_each_get_a_name() -> None:
    lock = _lock(_child("odd", ["a:b", "a/b", "a b"]))
    source = _flow_py([{"name": "odd", "alias": "x"}], lock)
    assert _wiring(source) == {"x": {n: ("parameter", f"x-{n}") for n in ("a:b", "a/b", "a b")}}
    assert {"x_a_b", "x_a_b_2", "x_a_b_3"} <= set(source.split())


def test_a_name_the_module_imports_is_never_shadowed() -> None:
    lock = _lock(_child("pair", ["b_c", "c"]), _child("one", ["db_result"]))
    steps = [
        {"name": "pair", "alias": "create_flow"},  # create_flow_run is Prefect's task
        {"name": "one", "alias": "load", "mapped_parameters": {"db_result": {"parent_flow_name": "create_flow", "parent_task_name": "out"}}},
    ]
    source = _flow_py(steps, lock)
    assert "    create_flow_run_2 = run_child_flow(\n" in source
    assert "    load_db_result_2 = get_task_run_result(create_flow_run_2, " in source
    assert _wiring(source)["load"] == {"db_result": ("mapped", "create_flow")}


def test_a_suffix_never_takes_a_name_the_spec_gives_elsewhere() -> None:
    # x_b's parameter "c_2" is x_b_c_2 by itself, so x_b's "c" (x_b_c, taken by x's "b_c") skips to _3.
    lock = _lock(_child("three", ["b_c", "c", "c_2"]))
    source = _flow_py([{"name": "three", "alias": "x"}, {"name": "three", "alias": "x_b"}], lock)
    assert "    x_b_c = Parameter(\"x-b_c\", default=0)\n" in source
    assert "    x_b_c_2 = Parameter(\"x_b-c_2\", default=0)\n" in source
    assert "    x_b_c_3 = Parameter(\"x_b-c\", default=0)\n" in source
    _wiring(source)


def test_renaming_is_deterministic() -> None:
    lock = _lock(_child("odd", ["a:b", "a/b"]))
    steps = [{"name": "odd", "alias": "a"}, {"name": "odd", "alias": "a_a"}]
    assert _flow_py(steps, lock) == _flow_py(steps, lock)


ALIASES = ["a", "a_b", "b", "b_c", "create_flow", "load", "x", "x_b"]
PARAMETERS = ["b_c", "c", "a:b", "a/b", "b", "b_2", "db_result", "flow_run", "run", "done", "2"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    aliases=st.lists(st.sampled_from(ALIASES), min_size=1, max_size=5, unique=True),
    parameters=st.lists(st.sampled_from(PARAMETERS), min_size=1, max_size=6, unique=True),
    chain=st.booleans(),
)
def test_any_names_compile_and_every_parameter_gets_its_own_value(
    aliases: list[str], parameters: list[str], chain: bool
) -> None:
    lock = _lock(_child("child", parameters))
    steps: list[dict[str, Any]] = []
    for position, alias in enumerate(aliases):
        step: dict[str, Any] = {"name": "child", "alias": alias}
        if chain and position:  # the last parameter mapped from the step before
            step["mapped_parameters"] = {parameters[-1]: {"parent_flow_name": aliases[position - 1], "parent_task_name": "out"}}
        steps.append(step)
    wiring = _wiring(_flow_py(steps, lock))
    for position, alias in enumerate(aliases):
        expected = {name: ("parameter", f"{alias}-{name}") for name in parameters}
        if chain and position:
            expected[parameters[-1]] = ("mapped", aliases[position - 1])
        assert wiring[alias] == expected
