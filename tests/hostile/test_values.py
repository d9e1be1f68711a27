"""The values policy (compiler/values.py): every default and override reaches flow.py as a literal
that imports and equals the value, or is rejected with its location (issue 11, items 5, 10-12, 17)."""

from __future__ import annotations

import ast
import datetime
import enum
import math
import time
from pathlib import Path

import pytest

from compiler.compile import compile_spec
from compiler.diagnostics import CompileError
from compiler.lock import read_lock
from compiler.overrides import parse_value
from compiler.values import MAX_INT_DIGITS, ValueRejected, literal, normalize, type_mismatch
from tests.helpers import REPO, flowc
from tests.hostile.conftest import no_traceback

LOCK = read_lock((REPO / "specs" / "flows.lock.yaml").read_text(), "specs/flows.lock.yaml")
FAN_IN = (REPO / "specs" / "fan_in.yaml").read_text()


def _line(needle: str, text: str = FAN_IN) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


START = _line("parameters: {value: 1.5, factor: 2.0}")
LEFT = _line("parameters: {factor: 3.0}")


def _errors(text: str) -> list[str]:
    with pytest.raises(CompileError) as raised:
        compile_spec(text, "specs/fan_in.yaml", LOCK)
    return [d.format() for d in raised.value.diagnostics]


# The policy itself ----------------------------------------------------------------------------


class Colour(enum.IntEnum):
    RED = 3


class Name(str, enum.Enum):
    A = "a"


class Metres(float):
    pass


@pytest.mark.parametrize(
    "value, kept",
    [
        ((1, 2), [1, 2]),
        ({"a": (1, {"b": (None,)})}, {"a": [1, {"b": [None]}]}),
        (Colour.RED, 3),
        (Metres(2.5), 2.5),
        ({Name.A: Name.A}, {"a": "a"}),
        (10 ** (MAX_INT_DIGITS - 1), 10 ** (MAX_INT_DIGITS - 1)),
        (-0.0, -0.0),
        ("\ud800\x00'\"\n", "\ud800\x00'\"\n"),
    ],
    ids=lambda value: type(value).__name__,
)
def test_accepted_values_become_literals_that_equal_them(value: object, kept: object) -> None:
    normalized = normalize(value)
    assert normalized == kept and type(normalized) is type(kept)
    assert ast.literal_eval(literal(normalized)) == kept
    compile(f"x = {literal(normalized)}\n", "flow.py", "exec")


@pytest.mark.parametrize(
    "value, words",
    [
        (math.nan, "NaN"),
        (-math.inf, "infinity"),
        (10**MAX_INT_DIGITS, "4300 digits"),
        (datetime.date(2020, 1, 1), "a date"),
        (datetime.datetime(2020, 1, 1, 12), "a timestamp"),
        (b"hi", "binary"),
        ({1, 2}, "a set"),
        ({True: 1}, "boolean"),
        ({1: "a"}, "mapping keys must be strings"),
        (enum.Enum("Plain", "x").x, "enum member"),
        (object(), "type object"),
    ],
    ids=lambda value: type(value).__name__,
)
def test_rejected_values_say_why(value: object, words: str) -> None:
    with pytest.raises(ValueRejected, match=words):
        normalize({"outer": [value]})


def test_a_value_that_contains_itself_is_rejected() -> None:
    looped: list[object] = []
    looped.append(looped)
    with pytest.raises(ValueRejected, match="deeper"):
        normalize(looped)


@pytest.mark.parametrize(
    "default, value, fits",
    [(1, 2, True), (1, 2.5, False), (1.0, 2, True), (True, 1, False), (1, True, False), ("a", 1, False),
     (None, {"x": 1}, True), ([1], [], True), ({"a": 1}, [1], False)],
)
def test_overrides_must_have_the_defaults_type(default: object, value: object, fits: bool) -> None:
    assert (type_mismatch(default, value) is None) is fits


# Spec defaults (items 10, 11, 12) ----------------------------------------------------------------


def test_yaml_boolean_key_is_located_and_explained() -> None:
    text = FAN_IN.replace("parameters: {value: 1.5, factor: 2.0}", "parameters: {on: 1, factor: 2.0}")
    errors = _errors(text)
    assert len(errors) == 1
    assert errors[0].startswith(f"specs/fan_in.yaml:{START}:")
    assert "'on'" in errors[0] and "boolean" in errors[0] and "quote it" in errors[0]


def test_integer_key_is_located() -> None:
    errors = _errors(FAN_IN.replace("parameters: {factor: 3.0}", "parameters: {factor: {1: a}}"))
    assert errors == [errors[0]] and errors[0].startswith(f"specs/fan_in.yaml:{LEFT}:")
    assert "mapping keys must be strings" in errors[0]


def test_huge_integer_default_is_located() -> None:
    errors = _errors(FAN_IN.replace("factor: 3.0", "factor: " + "9" * 5000))
    assert len(errors) == 1 and errors[0].startswith(f"specs/fan_in.yaml:{LEFT}:") and "4300 digits" in errors[0]


def test_huge_hex_integer_default_is_located() -> None:
    errors = _errors(FAN_IN.replace("factor: 3.0", "factor: 0x" + "f" * 5000))
    assert len(errors) == 1 and "4300 digits" in errors[0]


@pytest.mark.parametrize("written", [".nan", ".inf", "-.inf", "[1, .nan]"])
def test_non_finite_default_is_located(written: str) -> None:
    errors = _errors(FAN_IN.replace("factor: 3.0", f"factor: {written}"))
    assert len(errors) == 1 and errors[0].startswith(f"specs/fan_in.yaml:{LEFT}:") and "JSON" in errors[0]


def test_non_finite_lock_default_never_reaches_flow_py() -> None:
    """A lock holding `.nan` (hand-edited, or written by an older flowc) is refused at generate."""
    text = (REPO / "specs" / "flows.lock.yaml").read_text()
    text = text.replace("default: 1.0e-06", "default: .nan", 1)
    spec = (REPO / "specs" / "impact_pipeline.yaml").read_text()
    try:  # the lock's reader refuses it already, at its line
        files = compile_spec(spec, "specs/impact_pipeline.yaml", read_lock(text, "specs/flows.lock.yaml"))
    except CompileError as error:
        assert any("nan" in d.message for d in error.diagnostics)
        return
    pytest.fail("flow.py would hold nan:\n" + files["impact_pipeline/flow.py"][:400])


def test_bad_key_in_one_spec_still_reports_the_other_specs(project: Path) -> None:
    spec = project / "specs" / "fan_in.yaml"
    spec.write_text(spec.read_text().replace("parameters: {value: 1.5, factor: 2.0}", "parameters: {on: 1}"))
    other = project / "specs" / "quad_scan.yaml"
    other.write_text(other.read_text().replace("parameters: {quad_k: 0.5}", "parameters: {quad_k: .nan}"))
    for command in ("generate", "check", "build"):
        args = [command, "--no-image", "--no-register"] if command == "build" else [command]
        result = flowc(*args, cwd=project)
        assert result.returncode == 1, (command, result.stdout + result.stderr)
        no_traceback(result.stderr)
        assert f"specs/fan_in.yaml:{START}:" in result.stderr and "boolean" in result.stderr
        assert "specs/quad_scan.yaml:" in result.stderr


def test_huge_integer_through_graph(project: Path) -> None:
    spec = project / "specs" / "fan_in.yaml"
    spec.write_text(spec.read_text().replace("factor: 3.0", "factor: " + "9" * 5000))
    result = flowc("graph", "specs/fan_in.yaml", cwd=project)
    assert result.returncode == 1
    no_traceback(result.stderr)
    assert f"specs/fan_in.yaml:{LEFT}:" in result.stderr


# The lock's capture (item 5: a tuple default is the list a run receives) --------------------------


def test_tuple_default_is_captured_as_the_list_a_run_receives() -> None:
    """The capture process (compiler/runtime/introspect.py) applies this same policy."""
    from compiler.runtime.introspect import _values_policy

    normalized = _values_policy()
    assert normalized((1, 2)) == ([1, 2], None)
    assert normalized(float("nan"))[1] is not None


# -p (item 17) ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, words",
    [
        ("&a [*a]", "alias inside its own anchor"),
        ("&a [*a, *a]", "alias inside its own anchor"),
        ("[&a [1,2,3,4,5,6,7,8,9,10], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b],"
         " &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d], [*e,*e,*e,*e,*e,*e,*e,*e]]",
         "alias bomb"),
        ("2020-01-01", "a date"),
        ("2020-01-01 10:00:00", "a timestamp"),
        ("{a: 1, a: 2}", "duplicate key"),
        (".nan", "NaN"),
        ("1e400", "infinity"),
        ("{on: 1}", "boolean"),
        ("!!binary aGk=", "binary"),
        ("!!set {a}", "tag"),
        ("9" * 5000, "4300 digits"),
        ("[" * 100_000, "nesting deeper"),
    ],
    ids=lambda raw: raw[:24],
)
def test_bad_p_values_are_rejected_quickly(raw: str, words: str) -> None:
    start = time.process_time()  # CPU, not wall: a loaded CI machine makes a process wait for a core
    with pytest.raises(ValueError, match=words):
        parse_value(raw)
    assert time.process_time() - start < 1.5  # pydantic's first import is most of it


def test_p_alias_bomb_ends_with_exit_2_naming_the_parameter(project: Path) -> None:
    result = flowc("run", "-p", "start-value=&a [*a, *a]", "-p", "left-factor=.nan", "specs/fan_in.yaml", cwd=project)
    assert result.returncode == 2, result.stdout + result.stderr
    no_traceback(result.stderr)
    assert "-p start-value:" in result.stderr and "-p left-factor:" in result.stderr


def test_p_value_of_the_wrong_type_is_exit_2_before_anything_runs(project: Path) -> None:
    result = flowc("run", "-p", "left-factor=[1]", "-p", "start-value=true", "specs/fan_in.yaml", cwd=project)
    assert result.returncode == 2
    assert "-p left-factor: expected a number like its default 3.0, got a list" in result.stderr
    assert "-p start-value: expected a number like its default 1.5, got a boolean" in result.stderr
    assert not (project / ".flowc" / "runs").exists() or not any((project / ".flowc" / "runs").iterdir())
