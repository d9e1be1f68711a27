"""The LUME-services integration tier: its own flow1, flow2, flow3, unmodified, composed by flowc.

LUME-services' test flows and its own `lume_services/tests/files/flow_of_flows.yaml` (with a
`source:` added to each flow, nothing else) from the tarball, in its Python 3.9 environment
(`scripts/lume-env.sh`, named by `[tool.flowc] python`), with its results database on a real
nx-27017 and its mounted filesystem as its own tests configure them: `flowc lock` captures the
three interfaces in that interpreter, `flowc generate` compiles the composition, `flowc run` runs
it. flow1 writes a text file (LUME's SaveFile), flow2 gets its reference by a `file` mapping, loads
it (LoadFile) and stores a result (SaveDBResult), flow3 gets `text1` from that document by a `db`
mapping and compares it with `text2`. Every value is checked on its own: the file on disk, the
document in the database (with LUME's hash recomputed here), and flow3's answer recomputed from
them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from compiler.runtime_dist import runtime_version
from tests.lume_env import LumeEnv, flowc_store_url, lume_env_or_skip, lume_settings, unique

SOURCES = {name: f"lume_services_test_flows.{name}:flow" for name in ("flow1", "flow2", "flow3")}


def flowc(*args: str, cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "compiler", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )


def lume_spec(lume: LumeEnv) -> str:
    """LUME's own flow_of_flows.yaml with `source:` added to each composing flow."""
    original = yaml.safe_load((lume.src / "lume_services" / "tests" / "files" / "flow_of_flows.yaml").read_text())
    for flow in original["composing_flows"]:
        flow["source"] = SOURCES[flow["name"]]
    return yaml.safe_dump(original, sort_keys=False)


@pytest.fixture(scope="module")
def project(mongo_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    lume = lume_env_or_skip()
    root = tmp_path_factory.mktemp("lume_project")
    (root / "specs").mkdir()
    (root / "pyproject.toml").write_text(
        '[project]\nname = "lume-composition"\nversion = "0"\n\n'
        f'[tool.flowc]\npython = "{lume.python}"\n'
    )
    (root / "specs" / "flow_of_flows.yaml").write_text(lume_spec(lume))
    mount = root / "share"
    mount.mkdir()
    database = unique("lume_tier")
    settings = lume_settings(mongo_server, database, root / "lume-scratch", mount)
    env = {
        **os.environ,
        **settings,
        "HOME": str(root / "home"),
        "FLOWC_RESULTS_DB": flowc_store_url(mongo_server, database),
        "FLOWC_MOUNT": f"{mount}:{mount}",
    }
    env.pop("PYTHONPATH", None)
    return {"lume": lume, "root": root, "mount": mount, "env": env, "database": database, "url": env["FLOWC_RESULTS_DB"]}


def test_runtime_install_defaults_to_the_projects_python(project: dict[str, Any]) -> None:
    # scripts/lume-env.sh installed this checkout's runtime there already: the same one, a no-op.
    result = flowc("runtime", "install", cwd=project["root"], env=project["env"])
    assert result.returncode == 0, result.stderr
    assert f"flowc-runtime {runtime_version()} is up to date in {project['lume'].python}" in result.stderr


def test_lock_captures_lumes_flows_in_its_own_interpreter(project: dict[str, Any]) -> None:
    result = flowc("lock", cwd=project["root"], env=project["env"])
    assert result.returncode == 0, result.stderr
    lock = yaml.safe_load((project["root"] / "specs" / "flows.lock.yaml").read_text())
    text = json.dumps(lock)
    for name in ("flow1", "flow2", "flow3"):
        assert f"test/{name}" in text
    flows = lock.get("flows", lock)
    params = {key: sorted(_parameter_names(entry)) for key, entry in flows.items() if key.startswith("test/")}
    assert params == {
        "test/flow1": ["filename", "filesystem_identifier", "text1", "text2"],
        "test/flow2": ["file_rep"],
        "test/flow3": ["text1", "text2"],
    }
    assert "save_text_file" in json.dumps(flows["test/flow1"])
    assert "save_db_result" in json.dumps(flows["test/flow2"])

    result = flowc("generate", cwd=project["root"], env=project["env"])
    assert result.returncode == 0, result.stderr
    flow_py = (project["root"] / "generated" / "flow_of_flows" / "flow.py").read_text()
    for name in ("flow1", "flow2", "flow3"):
        assert f'flow_name="{name}"' in flow_py
    assert "load_db_result" in flow_py
    result = flowc("check", cwd=project["root"], env=project["env"])
    assert result.returncode == 0, result.stdout + result.stderr


def _parameter_names(entry: Any) -> list[str]:
    parameters = entry["parameters"]
    if isinstance(parameters, dict):
        return list(parameters)
    return [p["name"] for p in parameters]


def _lume_hash(inputs: dict[str, Any], outputs: dict[str, Any], flow_id: str) -> str:
    # LUME's fingerprint_dict, written out here: md5 of json.dumps of {inputs, outputs, flow_id}.
    return hashlib.md5(json.dumps({"inputs": inputs, "outputs": outputs, "flow_id": flow_id}).encode()).hexdigest()


def test_run_delivers_the_file_and_the_db_value_to_lumes_flows(project: dict[str, Any]) -> None:
    import pymongo

    if not (project["root"] / "generated" / "flow_of_flows" / "flow.py").exists():
        for command in ("lock", "generate"):
            done = flowc(command, cwd=project["root"], env=project["env"])
            assert done.returncode == 0, done.stderr
    text1, text2 = "hey", f" you {unique('run')}"
    filename = project["mount"] / "flow1_res.txt"
    result = flowc(
        "run", "specs/flow_of_flows.yaml", "--json",
        # -p values are YAML: quoted, so the leading space of text2 stays.
        "-p", f"flow1-text1={json.dumps(text1)}",
        "-p", f"flow1-text2={json.dumps(text2)}",
        "-p", f"flow1-filename={json.dumps(str(filename))}",
        "-p", "flow1-filesystem_identifier=mounted",
        "-p", f"flow3-text2={json.dumps(text1 + text2)}",
        cwd=project["root"],
        env=project["env"],
    )
    assert result.returncode == 0, result.stderr[-5000:]
    # LUME-services is not importable here: its flows can only have run in its own interpreter.
    assert importlib.util.find_spec("lume_services") is None
    summary = json.loads(result.stdout)
    assert summary["ok"] is True, summary
    children = {child["alias"]: child for child in summary["children"]}
    assert [children[name]["state"] for name in ("flow1", "flow2", "flow3")] == ["Success"] * 3

    # flow1's file, written by LUME's SaveFile, read back here.
    assert filename.read_text() == text1 + text2
    file_rep = children["flow2"]["mapped"]["file_rep"]
    assert file_rep == {
        "filename": str(filename),
        "file_type_string": "lume_services.files.file:File[TextSerializer]",
        "filesystem_identifier": "mounted",
    }
    # flow2's document, stored by LUME's SaveDBResult, read here with pymongo.
    client = pymongo.MongoClient(project["url"], serverSelectionTimeoutMS=5000)
    try:
        documents = list(client[project["database"]]["test"].find({"inputs.input1": text1 + text2}))
    finally:
        client.close()
    assert len(documents) == 1
    (document,) = documents
    assert document["outputs"] == {"output1": text1 + text2}
    assert document["unique_hash"] == _lume_hash(document["inputs"], document["outputs"], document["flow_id"])
    # The db mapping delivered that document's outputs.output1 to flow3 ...
    assert children["flow3"]["mapped"]["text1"] == document["outputs"]["output1"]
    # ... and flow3's answer is what comparing the two gives.
    expected = document["outputs"]["output1"] == text1 + text2
    assert expected is True
    flow3_results = children["flow3"]["results"]
    (answer,) = [value for slug, value in flow3_results.items() if slug.startswith("check_text_equivalence")]
    assert answer is expected
