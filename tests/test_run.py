"""`flowc run` end to end: the real command line runs the committed generated flow in a copy of
this project, and every number the last children report is checked against values computed here,
independently, from what the earlier children wrote (the distribution file, the stored results).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from pathlib import Path
from typing import Any

import pytest

from compiler.runtime import fetch_result_value
from tests.helpers import PREFECT1_SPECS, REPO, copy_project, flowc, tree

# The distgen defaults (examples/flows/distgen.py), written out so a changed default shows up here.
SIGMA_X, SIGMA_XP, BETA_GAMMA = 0.001, 0.0001, 5.0


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of this project as committed: specs, lock, generated/ and the example flows."""
    return copy_project(tmp_path / "project", generated=True, examples=True)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FLOWC_RESULTS_DB", "FLOWC_MOUNT")}
    env.update(extra)
    return env


def run_json(project: Path, spec: str, *params: str, expect: int = 0, **env: str) -> dict[str, Any]:
    """`flowc run SPEC -p ... --json` in `project`; the exit code must be `expect`."""
    args = ["run", f"specs/{spec}.yaml", "--json"]
    for param in params:
        args += ["-p", param]
    done = flowc(*args, cwd=project, env=_env(**env))
    assert done.returncode == expect, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    summary = json.loads(done.stdout)  # stdout holds the JSON object and nothing else
    assert isinstance(summary, dict)
    return summary


def children(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {child["alias"]: child for child in summary["children"]}


def norm_emittance(distribution: dict[str, Any]) -> float:
    """beta*gamma * sqrt(<x^2><x'^2> - <x x'>^2) over central moments, written apart from impact's."""
    xs, xps = distribution["x"], distribution["xp"]
    n = len(xs)
    mx, mp = sum(xs) / n, sum(xps) / n
    sxx = sum((x - mx) ** 2 for x in xs) / n
    spp = sum((p - mp) ** 2 for p in xps) / n
    sxp = sum((x - mx) * (p - mp) for x, p in zip(xs, xps)) / n
    return distribution["beta_gamma"] * math.sqrt(sxx * spp - sxp**2)


def sigma_after_drift(distribution: dict[str, Any], drift_length: float) -> float:
    """rms x after a drift (a thin quad then only changes x')."""
    xs = [x + drift_length * p for x, p in zip(distribution["x"], distribution["xp"])]
    mean = sum(xs) / len(xs)
    return math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs))


def saved_distribution(project: Path, distgen: dict[str, Any], n_particle: int, seed: int) -> dict[str, Any]:
    """The file distgen wrote, checked to be under the working directory and made with these parameters."""
    reference = distgen["results"]["save_distribution-1"]
    assert reference["filesystem_identifier"] == "local"
    path = Path(reference["filename"])
    assert path.parent == project / ".flowc" / "files"  # relative to the working directory
    distribution = json.loads(path.read_text())
    assert distribution["n_particle"] == n_particle == len(distribution["x"]) == len(distribution["xp"])
    rng = random.Random(seed)
    assert distribution["x"][0] == rng.gauss(0.0, SIGMA_X)  # the seed reached distgen
    assert distribution["beta_gamma"] == BETA_GAMMA
    return distribution


def all_succeeded(summary: dict[str, Any], aliases: list[str]) -> None:
    assert summary["state"] == "Success" and summary["ok"] is True
    assert [c["alias"] for c in summary["children"]] == aliases
    assert all(c["state"] == "Success" and c["ok"] for c in summary["children"]), summary["children"]
    assert len({c["run_id"] for c in summary["children"]}) == len(aliases)


# Every example spec, end to end ------------------------------------------------------------------


def check_impact_pipeline(project: Path, summary: dict[str, Any], store: str | None = None) -> float:
    """distgen -file-> impact -db-> analysis, impact -raw-> scaled; returns the emittance."""
    all_succeeded(summary, ["distgen", "impact", "analysis", "scaled"])
    steps = children(summary)
    distribution = saved_distribution(project, steps["distgen"], n_particle=2000, seed=7)
    emittance = norm_emittance(distribution)

    impact = steps["impact"]
    assert impact["mapped"] == {"distribution_file": steps["distgen"]["results"]["save_distribution-1"]}
    result_rep = impact["results"]["save_db_result-1"]
    assert result_rep["project_name"] == "lume"
    # The stored result is what impact computed from that very file.
    assert fetch_result_value(result_rep, ["outputs", "end_n_particle"], store) == 2000
    assert fetch_result_value(result_rep, ["outputs", "end_sigma_x"], store) == pytest.approx(
        sigma_after_drift(distribution, 1.0), rel=1e-9
    )
    assert fetch_result_value(result_rep, ["inputs", "distribution_file"], store) == impact["mapped"]["distribution_file"]

    analysis = steps["analysis"]  # db mapping: outputs.end_norm_emit_x of impact's stored result
    assert analysis["mapped"]["emittance"] == pytest.approx(emittance, rel=1e-9)
    assert analysis["results"]["report-1"] == {
        "emittance": pytest.approx(emittance, rel=1e-9),
        "threshold": 1e-6,
        "ratio": pytest.approx(emittance / 1e-6, rel=1e-9),
        "ok": emittance <= 1e-6,
    }
    scaled = steps["scaled"]  # raw mapping: impact's summarize result
    assert scaled["mapped"] == {"value": impact["results"]["summarize-1"]}
    assert scaled["results"]["scale-1"] == pytest.approx(emittance * 1e6, rel=1e-9)
    return emittance


def test_impact_pipeline_delivers_file_db_and_raw_values(project: Path) -> None:
    summary = run_json(project, "impact_pipeline")
    check_impact_pipeline(project, summary, f"sqlite:///{project / '.flowc' / 'results.db'}")
    assert summary["results_db"] == "sqlite:///.flowc/results.db"
    assert summary["parameters"]["distgen-n_particle"] == 2000  # the spec's new default


def test_fan_in_combines_both_concurrent_branches(project: Path) -> None:
    summary = run_json(project, "fan_in")
    all_succeeded(summary, ["start", "left", "right", "combine"])
    steps = children(summary)
    assert steps["start"]["results"] == {"scale-1": 3.0}  # 1.5 * 2
    assert steps["left"]["mapped"] == {"value": 3.0} and steps["left"]["results"] == {"scale-1": 9.0}
    assert steps["right"]["mapped"] == {"value": 3.0} and steps["right"]["results"] == {"scale-1": 15.0}
    assert steps["combine"]["mapped"] == {"a": 9.0, "b": 15.0}
    assert steps["combine"]["results"] == {"combine-1": 24.0}


def test_spec_names_that_are_one_python_name_still_reach_their_own_parameters(project: Path) -> None:
    # specs/python_names.yaml: `a:b`/`a/b`, `a`+`b_c`/`a_b`+`c` and `create_flow_run` collide as
    # Python names; flowc renames in flow.py, and each value still reaches its own parameter
    # (each parameter of digits is one decimal digit of its result).
    summary = run_json(project, "python_names", "a-a:b=8")
    all_succeeded(summary, ["a", "a_b", "create_flow"])
    steps = children(summary)
    assert steps["a"]["parameters"] == {"a:b": 8, "a/b": 2.0, "b_c": 3.0, "c": 4.0}
    assert steps["a"]["results"] == {"digits-1": 8234.0}
    assert steps["a_b"]["mapped"] == {"c": 8234.0}
    assert steps["a_b"]["results"] == {"digits-1": 5000 + 600 + 70 + 8234.0}
    assert steps["create_flow"]["results"] == {"scale-1": (5000 + 600 + 70 + 8234.0) * 0.5}


def test_lume_services_test_passes_text_by_raw_file_and_db(project: Path) -> None:
    summary = run_json(
        project, "lume_services_test", "flow1-text1=hello", "flow1-text2=' world'", "flow2-text2=again"
    )
    all_succeeded(summary, ["flow1", "flow2", "flow3"])
    steps = children(summary)
    assert steps["flow1"]["results"]["append_text-1"] == "hello world"
    file_rep = steps["flow1"]["results"]["save_text-1"]
    assert Path(file_rep["filename"]).read_text() == "hello world"
    assert steps["flow2"]["mapped"] == {"text1": "hello world"}  # raw
    stored = steps["flow2"]["results"]["save_db_result-1"]
    assert stored["project_name"] == "test"
    store = f"sqlite:///{project / '.flowc' / 'results.db'}"
    assert fetch_result_value(stored, ["outputs", "text"], store) == "hello worldagain"
    assert steps["flow3"]["mapped"] == {"file_rep": file_rep, "suffix": "hello worldagain"}  # file, db
    assert steps["flow3"]["results"] == {"append_text-1": "hello worldhello worldagain"}


def test_quad_scan_runs_one_flow_twice_with_its_own_parameters(project: Path) -> None:
    summary = run_json(project, "quad_scan")
    all_succeeded(summary, ["distgen", "weak_quad", "strong_quad", "total"])
    steps = children(summary)
    distribution = saved_distribution(project, steps["distgen"], n_particle=1000, seed=0)
    emittance = norm_emittance(distribution)
    store = f"sqlite:///{project / '.flowc' / 'results.db'}"
    weak = steps["weak_quad"]["results"]["save_db_result-1"]
    strong = steps["strong_quad"]["results"]["save_db_result-1"]
    assert weak != strong
    assert fetch_result_value(weak, ["inputs", "quad_k"], store) == 0.5
    assert fetch_result_value(strong, ["inputs", "quad_k"], store) == 2.0
    total = steps["total"]
    assert total["mapped"]["a"] == fetch_result_value(weak, ["outputs", "end_norm_emit_x"], store)  # db
    assert total["mapped"]["b"] == steps["strong_quad"]["results"]["summarize-1"]  # raw
    assert total["results"]["combine-1"] == pytest.approx(2 * emittance, rel=1e-9)


def test_reverse_order_runs_in_mapping_order(project: Path) -> None:
    summary = run_json(project, "reverse_order")
    all_succeeded(summary, ["distgen", "impact", "analysis"])
    steps = children(summary)
    emittance = norm_emittance(saved_distribution(project, steps["distgen"], n_particle=1000, seed=0))
    assert steps["distgen"]["started_at"] < steps["impact"]["started_at"] < steps["analysis"]["started_at"]
    assert steps["analysis"]["results"]["report-1"] == {
        "emittance": pytest.approx(emittance, rel=1e-9),
        "threshold": 0.001,
        "ratio": pytest.approx(emittance / 0.001, rel=1e-9),
        "ok": True,
    }


def test_unmapped_child_after_first_runs_and_orders_its_dependant(project: Path) -> None:
    from datetime import datetime, timedelta

    summary = run_json(project, "unmapped_after_first")
    all_succeeded(summary, ["distgen", "scale", "impact", "analysis"])
    steps = children(summary)
    assert steps["scale"]["parameters"] == {"value": 21.0, "factor": 2.0}
    assert steps["scale"]["results"] == {"scale-1": 42.0}
    emittance = norm_emittance(saved_distribution(project, steps["distgen"], n_particle=500, seed=0))
    assert steps["analysis"]["mapped"] == {"emittance": pytest.approx(emittance, rel=1e-9)}
    assert steps["analysis"]["results"]["report-1"]["emittance"] == pytest.approx(emittance, rel=1e-9)
    scale_end = datetime.fromisoformat(steps["scale"]["started_at"]) + timedelta(
        seconds=steps["scale"]["duration_s"]
    )
    assert datetime.fromisoformat(steps["analysis"]["started_at"]) >= scale_end - timedelta(milliseconds=1)


def test_every_example_spec_has_an_end_to_end_test() -> None:
    tested = {
        "impact_pipeline",
        "fan_in",
        "lume_services_test",
        "quad_scan",
        "reverse_order",
        "unmapped_after_first",
        "impact_scan",  # tests/test_scan_run.py
        "python_names",
    }
    assert {spec.stem for spec in PREFECT1_SPECS} == tested  # prefect3's: tests/test_prefect3_e2e.py


# The MongoDB results store -----------------------------------------------------------------------


def test_impact_pipeline_against_mongodb(project: Path, mongo_url: str) -> None:
    import pymongo

    summary = run_json(project, "impact_pipeline", FLOWC_RESULTS_DB=mongo_url)
    emittance = check_impact_pipeline(project, summary, mongo_url)
    assert summary["results_db"] == mongo_url
    assert not (project / ".flowc" / "results.db").exists()  # nothing went to the SQLite default
    client = pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=5000)
    try:
        database = client.get_default_database()
        # A collection per project. (nx-27017 shares collections between databases, so other
        # tests' collections may show up here too; a real MongoDB would list only "lume".)
        assert "lume" in database.list_collection_names()
        unique_hash = children(summary)["impact"]["results"]["save_db_result-1"]["query"]["unique_hash"]
        document = database["lume"].find_one({"unique_hash": unique_hash}, {"_id": 0})
    finally:
        client.close()
    assert document is not None
    assert set(document) == {"flow_id", "inputs", "outputs", "date_modified", "unique_hash", "result_type_string"}
    assert document["flow_id"] == "impact"
    assert document["outputs"]["end_norm_emit_x"] == pytest.approx(emittance, rel=1e-9)


def test_impact_pipeline_on_a_mounted_filesystem(project: Path, tmp_path: Path) -> None:
    host = tmp_path / "shared"
    summary = run_json(project, "impact_pipeline", FLOWC_MOUNT=f"{host}:/mnt/lume")
    all_succeeded(summary, ["distgen", "impact", "analysis", "scaled"])
    steps = children(summary)
    reference = steps["distgen"]["results"]["save_distribution-1"]
    assert reference["filesystem_identifier"] == "mounted"
    assert reference["filename"].startswith("/mnt/lume/.flowc/files/distribution-")  # the alias path
    assert steps["impact"]["mapped"] == {"distribution_file": reference}
    on_host = host / reference["filename"].removeprefix("/mnt/lume/")
    distribution = json.loads(on_host.read_text())
    assert distribution["n_particle"] == 2000
    emittance = norm_emittance(distribution)  # impact loaded that file through the mount
    assert steps["analysis"]["results"]["report-1"]["emittance"] == pytest.approx(emittance, rel=1e-9)
    assert steps["scaled"]["results"]["scale-1"] == pytest.approx(emittance * 1e6, rel=1e-9)


# Parameters ---------------------------------------------------------------------------------------


def test_parameter_overrides_reach_the_children_and_change_the_result(project: Path) -> None:
    summary = run_json(
        project,
        "impact_pipeline",
        "distgen-n_particle=300",
        "distgen-seed=11",
        "scaled-factor=2.5",
        "analysis-threshold=1e-7",  # an exponent without a dot is still a number
    )
    steps = children(summary)
    assert steps["distgen"]["parameters"]["n_particle"] == 300
    distribution = saved_distribution(project, steps["distgen"], n_particle=300, seed=11)
    emittance = norm_emittance(distribution)
    assert steps["analysis"]["results"]["report-1"] == {
        "emittance": pytest.approx(emittance, rel=1e-9),
        "threshold": 1e-7,
        "ratio": pytest.approx(emittance / 1e-7, rel=1e-9),
        "ok": False,  # over the lowered threshold: the override changed the verdict
    }
    assert steps["scaled"]["results"]["scale-1"] == pytest.approx(2.5 * emittance, rel=1e-9)
    assert summary["parameters"]["distgen-n_particle"] == 300
    assert summary["parameters"]["analysis-threshold"] == 1e-7


def test_unknown_parameter_is_a_usage_error_with_a_suggestion(project: Path) -> None:
    done = flowc(
        "run", "specs/impact_pipeline.yaml", "-p", "distgen-n_particles=5", "-p", "impact-distribution_file=x",
        cwd=project, env=_env(),
    )
    assert done.returncode == 2
    assert "has no parameter 'distgen-n_particles'; did you mean 'distgen-n_particle'?" in done.stderr
    assert "impact-distribution_file: this value is mapped from distgen.save_distribution" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (project / ".flowc" / "files").exists()  # nothing ran


def test_missing_required_parameter_is_an_error_before_anything_runs(project: Path) -> None:
    done = flowc("run", "specs/lume_services_test.yaml", "-p", "flow1-text1=a", cwd=project, env=_env())
    assert done.returncode == 2
    assert "missing required parameter 'flow1-text2'" in done.stderr
    assert "missing required parameter 'flow2-text2'" in done.stderr
    assert "'flow1-text1'" not in done.stderr
    assert not (project / ".flowc" / "files").exists()


def test_malformed_parameter_values_are_usage_errors(project: Path) -> None:
    done = flowc(
        "run", "specs/fan_in.yaml", "-p", "start-value", "-p", "left-factor=[1,", "-p", "right-factor=!",
        cwd=project, env=_env(),
    )
    assert done.returncode == 2
    assert "-p 'start-value': expected ALIAS-PARAM=VALUE" in done.stderr
    assert "-p left-factor: '[1,' is not accepted: YAML syntax" in done.stderr
    assert "-p right-factor: expected a number like its default 5.0, got a string" in done.stderr


# What runs is the committed file -------------------------------------------------------------------


def test_the_run_executes_the_committed_generated_file_byte_for_byte(project: Path) -> None:
    from compiler.compile import compile_spec
    from compiler.lock import read_lock_file

    before = tree(project / "generated")
    summary = run_json(project, "impact_pipeline")
    committed = (REPO / "generated" / "impact_pipeline" / "flow.py").read_bytes()
    compiled = compile_spec(
        (REPO / "specs" / "impact_pipeline.yaml").read_text(),
        "specs/impact_pipeline.yaml",
        read_lock_file(REPO / "specs" / "flows.lock.yaml", "specs/flows.lock.yaml"),
    )["impact_pipeline/flow.py"].encode()
    assert summary["flow_file"] == "generated/impact_pipeline/flow.py"
    assert summary["flow_file_sha256"] == hashlib.sha256(committed).hexdigest()
    assert committed == compiled  # and that file is exactly what the compiler writes
    assert tree(project / "generated") == before  # nothing written beside it, no __pycache__


def test_a_stale_generated_file_is_refused_not_regenerated(project: Path) -> None:
    flow_py = project / "generated" / "fan_in" / "flow.py"
    flow_py.write_text(flow_py.read_text().replace('factor": ', 'factor" : '))
    done = flowc("run", "specs/fan_in.yaml", cwd=project, env=_env())
    assert done.returncode == 1
    assert "generated/fan_in/flow.py: error: out of date with specs/fan_in.yaml" in done.stderr
    assert "flowc generate specs/fan_in.yaml" in done.stderr
    assert not (project / ".flowc" / "results.db").exists()


def test_a_missing_generated_file_says_to_generate(project: Path) -> None:
    (project / "generated" / "fan_in" / "flow.py").unlink()
    done = flowc("run", "specs/fan_in.yaml", cwd=project, env=_env())
    assert done.returncode == 1
    assert "generated/fan_in/flow.py: error: not generated yet; run `flowc generate specs/fan_in.yaml`" in done.stderr


def test_human_output_reports_each_child_and_a_summary(project: Path) -> None:
    done = flowc("run", "specs/fan_in.yaml", cwd=project, env=_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # said to a person: stderr
    out = done.stderr
    for alias in ("start", "left", "right", "combine"):
        assert f"▶ {alias}" in out and f"✔ {alias}" in out
    assert out.index("✔ start") < out.index("▶ left") < out.index("✔ left") < out.index("▶ combine")
    assert "a=9.0" in out and "b=15.0" in out  # the values combine received
    assert "fan_in: Success" in out and "(4 succeeded)" in out
