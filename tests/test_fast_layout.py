"""flow.py is laid out without black (compiler.targets.layout), and black is the oracle: for every
example and for random specs and values, the fast layout of a template's output is byte for byte
what black makes of it, and the examples need black for no statement at all."""

from __future__ import annotations

import dataclasses
import keyword
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import black
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from compiler.compile import compile_spec
from compiler.diagnostics import CompileError
from compiler.lock import Lock, read_lock
from compiler.targets import layout
from compiler.targets.common import BLACK_MODE_ARGS, format_with_black
from compiler.targets.prefect1 import render as prefect1_render
from compiler.targets.prefect3 import render as prefect3_render
from compiler.values import literal
from benchmarks import synthetic
from tests.helpers import REPO, SPECS
from tests.test_properties import LOCK, SPEC_PATH, dump, random_specs

WIDTH = BLACK_MODE_ARGS["line_length"]
VALUES = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SPECS_SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextmanager
def template_outputs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Each flow.py as its template wrote it, before layout (rendered through black meanwhile)."""
    captured: list[str] = []

    def capture(source: str) -> str:
        captured.append(source)
        return format_with_black(source)

    with monkeypatch.context() as patch:
        patch.setattr(prefect1_render, "format_python", capture)
        patch.setattr(prefect3_render, "format_python", capture)
        yield captured


def assert_laid_out_as_black(source: str, *, fixpoint: bool = False, width: int = WIDTH) -> str:
    fast = layout.format_module(source, width)
    assert fast == (format_with_black(source) if width == WIDTH else layout.black_once(source, width))
    if fixpoint:
        mode = black.Mode(target_versions={black.TargetVersion.PY310}, **BLACK_MODE_ARGS)
        assert black.format_str(fast, mode=mode) == fast
    return fast


def _no_black(*args: Any) -> Any:
    raise AssertionError(f"black was needed for {args[0][:200]!r}")


def test_every_example_is_laid_out_as_black_would_without_black(monkeypatch: pytest.MonkeyPatch) -> None:
    lock = read_lock((REPO / "specs" / "flows.lock.yaml").read_text(), "specs/flows.lock.yaml")
    large = synthetic.synthetic_lock(gather_widths=(29,))
    with template_outputs(monkeypatch) as sources:
        for spec in SPECS:
            compile_spec(spec.read_text(), f"specs/{spec.name}", lock)
        for text in (synthetic.chain_spec("chain", 30), synthetic.fan_in_spec("fan", 30), synthetic.mixed_spec("mixed", 30, 1)):
            compile_spec(text, SPEC_PATH, large)
    assert len(sources) == len(SPECS) + 3
    monkeypatch.setattr(layout, "_black_statement", _no_black)
    monkeypatch.setattr(layout, "_black_module", _no_black)
    for number, source in enumerate(sources):
        assert_laid_out_as_black(source, fixpoint=number < len(SPECS))


def test_generate_and_check_do_not_import_black() -> None:
    """black's import alone is ~0.1 s of a warm check (README.md, check speed)."""
    code = (
        "import sys\n"
        "from compiler.compile import compile_spec\n"
        "from compiler.lock import read_lock\n"
        "from tests.helpers import REPO, SPECS\n"
        "lock = read_lock((REPO / 'specs' / 'flows.lock.yaml').read_text(), 'specs/flows.lock.yaml')\n"
        "for spec in SPECS:\n"
        "    compile_spec(spec.read_text(), f'specs/{spec.name}', lock)\n"
        "print('black' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# Random values, straight into the statements flowc writes ---------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e-07, -0.0, 1e16, 1.5e300, 5e-324, 0.1, 100.0])
    | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=120)
    | st.text(st.characters(codec="ascii"), max_size=40)
    | st.text(max_size=8)
    | st.sampled_from(["it's", 'say "hi"', "both ' and \"", "back\\slash", "tab\there", "\x00\x1b", "é", "日本", "a\\'b"])
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(st.characters(codec="ascii"), max_size=40), inner, max_size=5),
    max_leaves=12,
)
names = st.from_regex(r"[a-z][a-z0-9_]{0,60}", fullmatch=True)


def _statements(name: str, value: Any) -> str:
    """The statement shapes of both templates, holding `value`."""
    text = literal(value)
    return (
        f"X = {text}\n"
        f"with IndexedFlow({literal(name)}, executor=LocalThreadExecutor(), run_config=DockerRun(image=IMAGE, labels=LABELS, env={text}), storage=Local(path='/opt/flowc/flow.py', validate=False,),) as flow:\n"
        f"    {name} = Parameter({literal(name)}, default={text})\n"
        f"    {name}_run = run_child_flow.map(flow_name=unmapped({literal(name)}), parameters={{ {literal(name)}: {name}, 'x': {text}, }}, labels=unmapped({text}), task_args={{'name': {literal('run ' + name)} }}, upstream_tasks=[{name}],)\n"
        f"    {name}_points = load_db_result.map(get_task_run_result.map({name}_run, unmapped({literal(name)})), attribute_index=unmapped({text}))\n"
        f"    {name}_p = point_parameters.map(unmapped({{ {literal(name)}: {name} }}), **{{ {literal(name)}: {name} }}, upstream_tasks=[{name}_run], task_args={{'name': {literal(name)} }})\n"
        f"PARAMETERS = flowc.CompositeParameters(defaults={{ {literal(name)}: {text}, }}, required=[{literal(name)}, ],)\n"
        "\n\n"
        f"@task(name={literal(name)}, retries=2, retry_delay_seconds={text})\n"
        f"def run_{name}(parameters: Dict[str, Any]) -> flowc.ChildRun:\n"
        f'    """Run {name}."""\n'
        f"    return flowc.outcome({{ {literal(name)}: {name}, 'x': {text}, }})\n"
    )


@VALUES
@given(names, values)
def test_random_values_are_laid_out_as_black_would(name: str, value: Any) -> None:
    assert_laid_out_as_black(_statements(name, value))


@pytest.mark.parametrize(
    "value",
    [
        "x" * 95,
        "x" * 200,
        ["y" * 90],
        {"k" * 50: ["v" * 40, {"deep": [[[[1.5e-07]]]]}]},
        list(range(60)),
        "naïve " * 20,
        ["it's"] * 30,
    ],
)
def test_long_and_awkward_values_are_laid_out_as_black_would(value: Any) -> None:
    assert_laid_out_as_black(_statements("step_with_a_rather_long_name_for_a_python_variable", value))


def test_source_it_does_not_read_goes_to_black_whole() -> None:
    source = "x = 1  # a comment after code\ny = f(a + b)\nz = [\n    1,  # inside\n]\n"
    assert assert_laid_out_as_black(source) == format_with_black(source)


# Random expressions of the shapes flowc writes, split at random widths ---------------------------

short_names = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(
    lambda name: not keyword.iskeyword(name)  # `if = []` is not Python
)


def _joined(items: list[str], magic: bool) -> str:
    return ", ".join(items) + ("," if magic and items else "")


expressions = st.recursive(
    st.one_of(short_names, scalars.map(literal), st.tuples(short_names, short_names).map(".".join)),
    lambda inner: st.one_of(
        st.tuples(short_names, st.lists(inner, max_size=4), st.lists(st.tuples(short_names, inner), max_size=3), st.booleans()).map(
            lambda c: f"{c[0]}({_joined(c[1] + [f'{k}={v}' for k, v in c[2]], c[3])})"
        ),
        st.tuples(st.lists(inner, max_size=5), st.booleans()).map(lambda c: f"[{_joined(c[0], c[1])}]"),
        st.tuples(st.lists(st.tuples(scalars.map(literal), inner), max_size=4), st.booleans()).map(
            lambda c: "{" + _joined([f"{k}: {v}" for k, v in c[0]], c[1]) + "}"
        ),
        st.tuples(short_names, inner).map(lambda c: f"{c[0]}(**{{'k': {c[1]}}})"),
        st.tuples(short_names, scalars.map(literal)).map(lambda c: f"{c[0]}[{c[1]}]"),
    ),
    max_leaves=14,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    expressions,
    short_names,
    st.integers(0, 3),
    st.sampled_from(["assign", "return", "call", "with", "decorator"]),
    st.sampled_from([WIDTH, WIDTH, 60, 40, 30, 20]),
)
def test_random_expressions_are_laid_out_as_black_would(expression: str, name: str, depth: int, shape: str, width: int) -> None:
    """Narrow line lengths too: they take the same code through many more splits."""
    source = {
        "assign": f"{name} = {expression}",
        "return": f"return {expression}",
        "call": f"{name}.submit({expression}, x={expression})",
        "with": f"with {name}({expression}) as flow:\n{'    ' * (depth + 1)}pass",
        "decorator": f"@task({expression})\ndef {name}(parameters: Dict[str, Any]) -> X:\n    pass",
    }[shape]
    if shape == "decorator":  # a top-level def, two blank lines after other code (as black wants)
        depth = 0
        source = "x = 1\n\n\n" + source
    blocks = "".join("    " * level + "with block() as b:\n" for level in range(depth))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(layout, "_black_module", _no_black)  # black may take a statement, not the file
        assert_laid_out_as_black(blocks + "    " * depth + source + "\n", width=width)


# Random specs, both targets ------------------------------------------------------------------------


# The same child flows, as Prefect 3 flows.
PREFECT3_LOCK = Lock(path=LOCK.path, flows={key: dataclasses.replace(flow, prefect=3) for key, flow in LOCK.flows.items()})
durations = st.sampled_from(["5s", "90s", "2h", "10m", "1.5s"])
long_labels = st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,40}", fullmatch=True), max_size=6)


@st.composite
def step_options(draw: st.DrawFn) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if draw(st.booleans()):
        options["retries"] = draw(st.integers(0, 5))
        if draw(st.booleans()):
            options["retry_delay"] = draw(durations)
    if draw(st.booleans()):
        options["timeout"] = draw(durations)
    if draw(st.booleans()):
        options["labels"] = draw(long_labels)
    return options


@SPECS_SETTINGS
@given(random_specs(max_steps=8), st.sampled_from(["prefect1", "prefect3"]), values, st.lists(step_options(), max_size=8), st.data())
def test_random_specs_are_laid_out_as_black_would(
    case: tuple[dict[str, Any], Any], target: str, value: Any, options: list[dict[str, Any]], data: st.DataObject
) -> None:
    """Random DAGs with random values, per-child options and scans, for both targets."""
    spec = case[0]
    spec["target"] = target
    if target == "prefect3":
        spec["image"] = "localhost:5000/random"
        spec["work_pool"] = "pool"
    steps = spec["composing_flows"]
    for step, extra in zip(steps, options):
        step.update(extra)
    for step in steps:
        if step.get("parameters"):
            step["parameters"][next(iter(step["parameters"]))] = value
    scanned = data.draw(st.sampled_from(steps))
    axes = [name for name in scanned.get("parameters", {})]
    if axes and data.draw(st.booleans()):
        scan_values = data.draw(st.lists(st.lists(scalars, min_size=1, max_size=4), min_size=len(axes), max_size=len(axes)))
        scanned["scan"] = {"mode": data.draw(st.sampled_from(["grid", "zip"])), "parameters": dict(zip(axes, scan_values))}
        if data.draw(st.booleans()):
            scanned["scan"]["max_concurrency"] = data.draw(st.integers(1, 4))
        for axis in axes:
            scanned["parameters"].pop(axis)
        if not scanned["parameters"]:
            scanned.pop("parameters")
    if target == "prefect3":  # no run configs, and tasks by name (Prefect 3 has no slugs)
        spec.pop("run_config", None)
        for step in steps:
            for mapping in step.get("mapped_parameters", {}).values():
                if "parent_task_slug" in mapping:
                    mapping["parent_task_name"] = mapping.pop("parent_task_slug").rsplit("-", 1)[0]
    with pytest.MonkeyPatch.context() as patch, template_outputs(patch) as sources:
        try:
            compile_spec(dump(spec), SPEC_PATH, LOCK if target == "prefect1" else PREFECT3_LOCK)
        except CompileError:  # a value the values policy rejects, or what a target has no form for
            event(f"{target}: rejected")
    for source in sources:
        event(f"{target}: compiled" + (", scanned" if "scan" in scanned else ""))
        assert_laid_out_as_black(source)
