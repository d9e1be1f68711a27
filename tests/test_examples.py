"""The example child flows compute real results and hand them on as specs will map them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import prefect
import pytest
from prefect import Flow
from prefect.engine.results import PrefectResult
from prefect.engine.state import State

from compiler.runtime import load_db_result, load_file
from examples.flows import analysis, combine, distgen, failing, impact, lume_test, scale


def _task_result(state: State, flow: Flow, name: str) -> object:
    """The result of the one task called `name`, as `get_task_run_result` would load it."""
    (task,) = flow.get_tasks(name=name)
    task_state = state.result[task]
    assert task_state.is_successful(), task_state.message
    return task_state.result


def _run(flow: Flow, **parameters: object) -> State:
    with prefect.context(project_name="lume"):
        state = flow.run(parameters=parameters)
    assert isinstance(state, State)
    return state


def _norm_emittance(xs: list[float], xps: list[float], beta_gamma: float) -> float:
    """Written apart from impact's: central second moments, then sqrt of the determinant."""
    n = len(xs)
    mx, mp = sum(xs) / n, sum(xps) / n
    sxx = sum((x - mx) ** 2 for x in xs) / n
    spp = sum((p - mp) ** 2 for p in xps) / n
    sxp = sum((x - mx) * (p - mp) for x, p in zip(xs, xps)) / n
    return beta_gamma * math.sqrt(sxx * spp - sxp**2)


def test_distgen_impact_analysis_chain_computes_the_conserved_emittance(
    runtime_env: Path,
) -> None:
    dist_state = _run(distgen.flow, n_particle=500, seed=3, output_dir="dist")
    assert dist_state.is_successful()
    file_rep = _task_result(dist_state, distgen.flow, "save_distribution")
    assert isinstance(file_rep, dict)
    assert file_rep["filesystem_identifier"] == "local"
    assert Path(file_rep["filename"]).parent == runtime_env / "dist"
    saved = json.loads(Path(file_rep["filename"]).read_text())
    assert saved["n_particle"] == 500 and len(saved["x"]) == 500

    impact_state = _run(
        impact.flow, distribution_file=file_rep, drift_length=2.0, quad_k=0.8
    )
    assert impact_state.is_successful()
    result_rep = _task_result(impact_state, impact.flow, "save_db_result")
    assert isinstance(result_rep, dict) and result_rep["project_name"] == "lume"

    emittance = load_db_result.run(result_rep, ["outputs", "end_norm_emit_x"])
    expected = _norm_emittance(saved["x"], saved["xp"], saved["beta_gamma"])
    assert emittance > 0
    assert emittance == pytest.approx(
        expected, rel=1e-9
    )  # drift and thin quad conserve it
    assert _task_result(impact_state, impact.flow, "summarize") == emittance

    end_x = [x + 2.0 * xp for x, xp in zip(saved["x"], saved["xp"])]
    mean_x = sum(end_x) / len(end_x)
    sigma_x = math.sqrt(sum((x - mean_x) ** 2 for x in end_x) / len(end_x))
    assert load_db_result.run(result_rep, ["outputs", "end_mean_x"]) == pytest.approx(
        mean_x, abs=1e-15
    )
    assert load_db_result.run(result_rep, ["outputs", "end_sigma_x"]) == pytest.approx(
        sigma_x, rel=1e-9
    )
    assert load_db_result.run(result_rep, ["inputs", "distribution_file"]) == file_rep
    assert load_db_result.run(result_rep, ["inputs", "quad_k"]) == 0.8

    analysis_state = _run(analysis.flow, emittance=emittance, threshold=1e-6)
    assert analysis_state.is_successful()
    assert _task_result(analysis_state, analysis.flow, "report") == {
        "emittance": emittance,
        "threshold": 1e-6,
        "ratio": pytest.approx(emittance / 1e-6),
        "ok": emittance <= 1e-6,
    }


def test_distgen_is_deterministic_for_a_seed(runtime_env: Path) -> None:
    first = _task_result(_run(distgen.flow, seed=7), distgen.flow, "save_distribution")
    again = _task_result(_run(distgen.flow, seed=7), distgen.flow, "save_distribution")
    other = _task_result(_run(distgen.flow, seed=8), distgen.flow, "save_distribution")
    assert isinstance(first, dict)
    assert first == again
    assert first != other
    assert Path(first["filename"]).parent == runtime_env / ".flowc" / "files"


def test_analysis_fails_a_beam_over_threshold(runtime_env: Path) -> None:
    state = _run(analysis.flow, emittance=3e-6)
    report = _task_result(state, analysis.flow, "report")
    assert report == {"emittance": 3e-6, "threshold": 1e-6, "ratio": 3.0, "ok": False}


def test_scale_and_combine_fan_out_and_in(runtime_env: Path) -> None:
    doubled = _task_result(_run(scale.flow, value=1.5), scale.flow, "scale")
    tripled = _task_result(_run(scale.flow, value=1.5, factor=3), scale.flow, "scale")
    total = _task_result(
        _run(combine.flow, a=doubled, b=tripled), combine.flow, "combine"
    )
    assert (doubled, tripled, total) == (3.0, 4.5, 7.5)


def test_failing_flow_fails_with_the_value_in_the_message(runtime_env: Path) -> None:
    state = _run(failing.flow, value=42)
    assert state.is_failed()
    (task,) = failing.flow.get_tasks(name="fail")
    assert "failing flow refuses value 42" in state.result[task].message


def test_lume_test_flows_pass_text_by_raw_file_and_db(runtime_env: Path) -> None:
    state1 = _run(lume_test.flow1, text1="hello ", text2="world")
    assert _task_result(state1, lume_test.flow1, "append_text") == "hello world"
    file_rep = _task_result(state1, lume_test.flow1, "save_text")
    assert isinstance(file_rep, dict)
    assert load_file.run(file_rep) == "hello world"
    assert file_rep["file_type_string"] == "lume_services.files.file:File[TextSerializer]"

    state3 = _run(lume_test.flow3, file_rep=file_rep, suffix="!")
    assert _task_result(state3, lume_test.flow3, "append_text") == "hello world!"

    state2 = _run(lume_test.flow2, text1="a", text2="b")
    result_rep = _task_result(state2, lume_test.flow2, "save_db_result")
    assert load_db_result.run(result_rep, ["outputs", "text"]) == "ab"
    assert load_db_result.run(result_rep, ["inputs"]) == {"text1": "a", "text2": "b"}


@pytest.mark.parametrize(
    ("flow", "persisted"),
    [
        (distgen.flow, {"save_distribution"}),
        (impact.flow, {"save_db_result", "summarize"}),
        (analysis.flow, {"report"}),
        (scale.flow, {"scale"}),
        (combine.flow, {"combine"}),
        (failing.flow, {"fail"}),
        (lume_test.flow1, {"append_text", "save_text"}),
        (lume_test.flow2, {"append_text", "save_db_result"}),
        (lume_test.flow3, {"append_text"}),
    ],
)
def test_mappable_tasks_persist_their_results(flow: Flow, persisted: set[str]) -> None:
    for name in persisted:
        (task,) = flow.get_tasks(name=name)
        assert isinstance(task.result, PrefectResult) and task.checkpoint is True
        assert flow.slugs[task] == f"{name}-1"
