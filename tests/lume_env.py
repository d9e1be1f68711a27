"""The LUME-services tier's shared pieces: its Python 3.9 environment, its settings, its driver.

The environment is built by `scripts/lume-env.sh` (`.ci/run` does, and exports
FLOWC_LUME_PYTHON and FLOWC_LUME_SRC); without it these tests skip, and with FLOWC_INTEGRATION=1
they fail instead. The results database is a real nx-27017 (the `mongo_server` fixture), reached
the way LUME-SERVICES.md found works: PLAIN auth, authSource admin.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

INTEGRATION = os.environ.get("FLOWC_INTEGRATION") == "1"
DRIVER = Path(__file__).resolve().parent / "lume_driver.py"
MONGO_USER = "lume"
MONGO_PASSWORD = "lume-secret"
# What LUME-services' own tests configure as the mounted filesystem's alias.
LUME_TEST_MOUNT_ALIAS = "/User/my_user/data"


@dataclass(frozen=True)
class LumeEnv:
    python: Path
    src: Path

    @property
    def flows(self) -> Path:
        return self.src / "lume_services" / "tests" / "flows" / "lume_services_test_flows"


def lume_env_or_skip() -> LumeEnv:
    python = os.environ.get("FLOWC_LUME_PYTHON", "")
    src = os.environ.get("FLOWC_LUME_SRC", "")
    if python and src and Path(python).is_file() and Path(src).is_dir():
        return LumeEnv(Path(python), Path(src))
    reason = "the LUME-services environment is not built: eval \"$(bash scripts/lume-env.sh)\""
    if INTEGRATION:
        pytest.fail(f"{reason} (FLOWC_INTEGRATION=1 needs the LUME tier)", pytrace=False)
    pytest.skip(reason)


def lume_settings(mongo_server: str, database: str, scratch: Path, mount: Path) -> dict[str, str]:
    """LUME-services' settings, as environment variables, for `configure_lume_services()`."""
    address = urlsplit(mongo_server)
    (scratch / "home").mkdir(parents=True, exist_ok=True)
    return {
        "HOME": str(scratch / "home"),  # LUME writes ~/.prefect/backend.toml
        "LUME_PREFECT__HOME_DIR": str(scratch / "prefect"),
        "LUME_BACKEND": "local",
        "LUME_RESULTS_DB__HOST": address.hostname or "127.0.0.1",
        "LUME_RESULTS_DB__PORT": str(address.port),
        "LUME_RESULTS_DB__USERNAME": MONGO_USER,
        "LUME_RESULTS_DB__PASSWORD": MONGO_PASSWORD,
        "LUME_RESULTS_DB__DATABASE": database,
        # pydantic 1 lower-cases LUME_RESULTS_DB__AUTHMECHANISM and ignores it: JSON it is.
        "LUME_RESULTS_DB": json.dumps({"authMechanism": "PLAIN", "options": {"authSource": "admin"}}),
        # The mounted filesystem, configured as LUME's own tests configure it, with the alias
        # where the mount is (as inside a container: LUME opens alias paths as they stand).
        "LUME_MOUNTED_FILESYSTEM__IDENTIFIER": "mounted",
        "LUME_MOUNTED_FILESYSTEM__MOUNT_PATH": str(mount),
        "LUME_MOUNTED_FILESYSTEM__MOUNT_ALIAS": str(mount),
        "LUME_MOUNTED_FILESYSTEM__MOUNT_TYPE": "DirectoryOrCreate",
        "PREFECT__CONTEXT__PROJECT_NAME": "test",
        "PREFECT__FLOWS__CHECKPOINTING": "true",
    }


def flowc_store_url(mongo_server: str, database: str) -> str:
    """The same database as flowc's runtime names it (FLOWC_RESULTS_DB)."""
    address = urlsplit(mongo_server)
    return (
        f"mongodb://{MONGO_USER}:{MONGO_PASSWORD}@{address.hostname}:{address.port}/{database}"
        "?authMechanism=PLAIN&authSource=admin"
    )


def unique(prefix: str) -> str:
    # nx-27017 shares collections between databases: names and values are unique per test.
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def run_lume(env: LumeEnv, actions: list[dict[str, Any]], settings: dict[str, str], cwd: Path) -> list[dict[str, Any]]:
    """Run actions with LUME-services' own tasks in its 3.9 environment; one outcome each."""
    actions_file = cwd / f"actions-{uuid.uuid4().hex[:8]}.json"
    actions_file.write_text(json.dumps(actions))
    outcomes = _json_line(env, [str(DRIVER), str(actions_file)], "", cwd, settings)
    assert len(outcomes) == len(actions)
    return outcomes


def run_python39(env: LumeEnv, code: str, payload: Any, cwd: Path, extra_env: dict[str, str]) -> Any:
    """Run `code` in the 3.9 environment with `payload` as `PAYLOAD`; it prints one JSON line."""
    header = "import json, sys\nPAYLOAD = json.loads(sys.stdin.read())\n"
    return _json_line(env, ["-c", header + code], json.dumps(payload), cwd, extra_env)


def _json_line(env: LumeEnv, args: list[str], stdin: str, cwd: Path, extra_env: dict[str, str]) -> Any:
    """Run the 3.9 interpreter; it must succeed, and its last line of stdout is JSON."""
    completed = subprocess.run(
        [str(env.python), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**_base_env(), **extra_env},
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _base_env() -> dict[str, str]:
    # Nothing of flowc's own environment leaks into the 3.9 interpreter.
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    return {key: os.environ[key] for key in keep if key in os.environ}


def value_of(outcome: dict[str, Any]) -> Any:
    assert "error" not in outcome, outcome.get("trace") or outcome["error"]
    return outcome["value"]
