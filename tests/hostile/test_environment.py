"""What comes from the environment (issue 11, items 16, 17): replica-set store URLs, malformed or
credentialed Prefect endpoints, NaN in children's results, an unreadable pyproject.toml: one line each,
never a traceback, never a password."""

from __future__ import annotations

import os
from pathlib import Path

from compiler.local.summary import _safe_url
from tests.helpers import flowc
from tests.hostile.conftest import no_traceback

REPLICA_SET = "mongodb://user:pw@h1:27017,h2:27017/results?replicaSet=rs0"


def test_a_replica_set_store_url_is_shown_without_its_password() -> None:
    assert _safe_url(REPLICA_SET) == "mongodb://user:***@h1:27017,h2:27017/results?replicaSet=rs0"
    assert _safe_url("sqlite:///.flowc/results.db") == "sqlite:///.flowc/results.db"


def _build(project: Path, endpoint: str) -> tuple[int, str]:
    env = {
        **os.environ,
        "HOME": str(project / "home"),
        "PREFECT__BACKEND": "server",
        "PREFECT__SERVER__ENDPOINT": endpoint,
    }
    done = flowc("build", "--no-image", "specs/fan_in.yaml", cwd=project, env=env)
    return done.returncode, done.stdout + done.stderr


def test_a_malformed_prefect_endpoint_is_one_error_line(project: Path) -> None:
    code, output = _build(project, "notaurl")
    assert code == 1
    no_traceback(output)
    assert "error: cannot reach the Prefect backend (server) at notaurl" in output


def test_an_endpoint_password_is_never_printed(project: Path) -> None:
    code, output = _build(project, "http://user:s3cret-pw@127.0.0.1:9/graphql")
    assert code == 1
    no_traceback(output)
    assert "s3cret-pw" not in output
    assert "user:***@127.0.0.1:9" in output


def test_non_finite_child_results_stay_json_in_the_summary() -> None:
    import json

    from compiler.local.summary import _jsonable

    shown = _jsonable({"results": [float("nan"), 1.5, {"x": float("-inf")}]})
    assert json.loads(json.dumps(shown, allow_nan=False)) == {"results": ["nan", 1.5, {"x": "-inf"}]}


def test_an_unreadable_pyproject_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.flowc]\nspecs = 'a'\nspecs = 'b'\n")
    done = flowc("check", cwd=tmp_path)
    assert done.returncode == 1
    no_traceback(done.stderr)
    assert "pyproject.toml:1:1: error: cannot read pyproject.toml" in done.stderr
    assert "line 3" in done.stderr
