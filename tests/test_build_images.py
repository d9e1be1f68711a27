"""`flowc build` with a real Docker engine (and the local registry for push and pull).

Integration tier: skipped when no engine answers at DOCKER_HOST, unless FLOWC_INTEGRATION=1
(.ci/run sets it after starting dockerd, the base image and the registry): then it fails.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import tarfile
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compiler.build import Progress, Tally, build_images, load_targets
from compiler.compile import compile_plan
from compiler.config import find_project
from compiler.output import load_lock
from tests.helpers import PREFECT1_SPECS, copy_project, flowc

INTEGRATION = os.environ.get("FLOWC_INTEGRATION") == "1"
BASE_IMAGE = "prefecthq/prefect:1.4.1-python3.10"

# Loads a prefect3 composite inside its image as a worker does (the deployment's entrypoint, from
# the pull step's directory) and prints what it found, with what the image holds besides.
LOAD_PREFECT3_FLOW = (
    "import json, os, sys, importlib.util as u, importlib.metadata as m, yaml, prefect; "
    "from prefect.flows import load_flow_from_entrypoint as load; "
    "d = yaml.safe_load(open('/opt/flowc/prefect.yaml')); "
    "os.chdir(d['pull'][0]['prefect.deployments.steps.set_working_directory']['directory']); "
    "[dep] = d['deployments']; f = load(dep['entrypoint']); "
    "print(json.dumps({'name': f.name, 'signature': sorted(f.parameters.properties), "
    "'defaults': sys.modules[f.fn.__module__].PARAMETERS.defaults, "
    "'image': dep['work_pool']['job_variables']['image'], 'prefect': prefect.__version__, "
    "'flowc': m.version('flowc'), 'runtime': u.find_spec('compiler.targets.prefect3.runtime').origin, "
    "'missing': [n for n in ('black', 'watchfiles', 'filelock', 'marshmallow') if u.find_spec(n) is None]}))"
)

# Loads the flow inside the image as an agent does and prints what it found.
LIST_PARAMETERS = (
    "import json; from prefect.utilities.storage import extract_flow_from_file as load; "
    "f = load(file_path='/opt/flowc/flow.py', flow_name='{name}'); "
    "print(json.dumps({{'name': f.name, 'parameters': sorted(p.name for p in f.parameters()), "
    "'image': f.run_config.image}}))"
)

PROBE_SPEC = """\
name: {name}
project_name: lume
image: {image}
{extra}composing_flows:
  - name: scale
    alias: doubled
    project_name: lume
    source: examples.flows.scale:flow
    parameters: {{value: 1.5}}
  - name: scale
    alias: tripled
    project_name: lume
    source: examples.flows.scale:flow
    parameters: {{factor: 3.0}}
    mapped_parameters:
      value: {{parent_flow_name: doubled, parent_task_name: scale}}
"""


def _unavailable(message: str) -> None:
    if INTEGRATION:
        pytest.fail(f"{message} (FLOWC_INTEGRATION=1: the services must be up)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    import docker

    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except Exception as error:  # noqa: BLE001 - any failure means "no engine"
        _unavailable(f"no Docker engine at DOCKER_HOST={os.environ.get('DOCKER_HOST')!r}: {error}")
    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        _unavailable(f"the base image {BASE_IMAGE} is missing (bash scripts/base-image.sh)")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def registry() -> str:
    address = os.environ.get("FLOWC_TEST_REGISTRY", "127.0.0.1:5000")
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=5) as response:
            assert response.status == 200
    except Exception as error:  # noqa: BLE001
        _unavailable(f"no registry answers at http://{address}/v2/ (scripts/registry.sh start): {error}")
    return address


def _run(client: Any, image: str, code: str) -> dict[str, Any]:
    output = client.containers.run(image, ["python", "-c", code], remove=True, network_disabled=True)
    return json.loads(output.decode().strip().splitlines()[-1])


def _remove(client: Any, *references: str) -> None:
    for reference in references:
        try:
            client.images.remove(reference, force=True)
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass


def test_every_example_spec_builds_an_image_that_loads_its_flow(tmp_path: Path, engine: Any) -> None:
    """Each image loads its flow as an agent would and has the plan's parameters; a second build is a no-op."""
    project_root = copy_project(tmp_path / "p")
    assert flowc("generate", cwd=project_root).returncode == 0
    project = find_project(project_root)
    # prefect3 projects: test_a_prefect3_project_builds_pushes_and_loads_in_its_image.
    targets = load_targets(project, [project_root / "specs" / p.name for p in PREFECT1_SPECS])
    assert sorted(t.name for t in targets) == sorted(p.stem for p in PREFECT1_SPECS)

    first = Tally()
    build_images(targets, first, Progress(), push=False)
    assert first.failed == 0 and first.built + first.up_to_date == len(targets)

    lock = load_lock(project)
    for target in targets:
        spec = project_root / target.spec
        plan = compile_plan(spec.read_text(), target.spec, lock)
        found = _run(engine, target.image, LIST_PARAMETERS.format(name=target.name))
        assert found == {
            "name": plan.name,
            "parameters": sorted(p.name for p in plan.parameters),
            "image": plan.image,
        }
        labels = engine.images.get(target.image).labels
        assert labels["io.flowc.inputs"] == plan.inputs_digest
        assert labels["io.flowc.spec"] == target.spec

    second = Tally()
    build_images(targets, second, Progress(), push=False)
    assert (second.built, second.up_to_date, second.failed) == (0, len(targets), 0)


def test_image_holds_the_runtime_from_the_wheel_and_no_build_time_dependency(tmp_path: Path, engine: Any) -> None:
    project_root = copy_project(tmp_path / "p")
    result = flowc("build", "--no-register", "specs/impact_pipeline.yaml", cwd=project_root)
    assert result.returncode == 0, result.stdout + result.stderr
    [target] = load_targets(find_project(project_root), [project_root / "specs" / "impact_pipeline.yaml"])
    code = (
        "import json, importlib.util as u, importlib.metadata as m; import compiler.runtime as r; "
        "print(json.dumps({'flowc': m.version('flowc'), 'runtime': r.__file__, "
        "'missing': [n for n in ('black', 'pydantic', 'rich', 'watchfiles') if u.find_spec(n) is None]}))"
    )
    found = _run(engine, target.image, code)
    assert found["flowc"] == "0.1.0"
    assert found["runtime"].endswith("site-packages/compiler/runtime/__init__.py")
    assert found["missing"] == ["black", "pydantic", "rich", "watchfiles"]


def test_push_to_the_local_registry_and_pull_back(tmp_path: Path, engine: Any, registry: str) -> None:
    name = f"push_probe_{uuid.uuid4().hex[:10]}"
    repository = f"{registry}/flowc-test/{name}"
    project_root = copy_project(tmp_path / "p")
    (project_root / "specs" / f"{name}.yaml").write_text(PROBE_SPEC.format(name=name, image=repository, extra=""))
    spec = f"specs/{name}.yaml"

    first = flowc("build", "--no-register", spec, cwd=project_root)
    assert first.returncode == 0, first.stdout + first.stderr
    [target] = load_targets(find_project(project_root), [project_root / spec])
    try:
        assert f"{name}: building {target.image}" in first.stderr
        assert f"{name}: pushed {target.image}" in first.stderr
        assert first.stderr.splitlines()[-1] == "1 built, 0 up to date, 1 pushed; registration skipped"
        with urllib.request.urlopen(f"http://{registry}/v2/flowc-test/{name}/tags/list", timeout=5) as response:
            assert json.load(response)["tags"] == [target.tag]

        second = flowc("build", "--no-register", spec, cwd=project_root)
        assert second.returncode == 0, second.stderr
        assert f"{name}: up to date ({target.image})" in second.stderr
        assert "building" not in second.stderr and "pushed" not in second.stderr
        assert second.stderr.splitlines()[-1] == "0 built, 1 up to date; registration skipped"

        built_id = engine.images.get(target.image).id
        engine.images.remove(target.image, force=True)
        third = flowc("build", "--no-register", spec, cwd=project_root)
        assert third.returncode == 0, third.stderr
        assert f"{name}: up to date in {registry}" in third.stderr  # the registry has it: no rebuild

        pulled = engine.images.pull(repository, tag=target.tag)
        assert pulled.id == built_id
        found = _run(engine, target.image, LIST_PARAMETERS.format(name=name))
        assert found == {
            "name": name,
            "parameters": ["doubled-factor", "doubled-value", "tripled-factor"],
            "image": target.image,
        }
    finally:
        _remove(engine, target.image)


def test_a_failed_build_shows_the_tail_of_its_log_and_exits_1(tmp_path: Path, engine: Any) -> None:
    """A base image without a shell or Python: the first RUN fails."""
    marker = uuid.uuid4().hex[:10]
    base = f"flowc-test/no-python:{marker}"
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        data = b"FROM scratch\nCOPY marker /marker\n"
        for file_name, content in (("Dockerfile", data), ("marker", marker.encode())):
            info = tarfile.TarInfo(file_name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    context.seek(0)
    engine.images.build(fileobj=context, custom_context=True, tag=base, rm=True)
    name = f"broken_{marker}"
    project_root = copy_project(tmp_path / "p")
    extra = f"base_image: {base}\n"
    (project_root / "specs" / f"{name}.yaml").write_text(
        PROBE_SPEC.format(name=name, image=f"flowc-test/{name}", extra=extra)
    )
    try:
        result = flowc("build", "--no-register", f"specs/{name}.yaml", cwd=project_root)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        lines = result.stderr.rstrip().splitlines()
        errors = [line for line in lines if line.startswith("error: ")]
        assert len(errors) == 1 and errors[0].startswith(f"error: {name}: build of flowc-test/{name}:"), lines
        assert f"failed ({name}/Dockerfile): " in errors[0]
        assert "    ... last lines of the log:" in lines
        assert any(re.match(r"    \| Step 3/6 : RUN python -m pip install", line) for line in lines)
        assert result.stderr.splitlines()[-1] == "0 built, 0 up to date, 1 failed; registration skipped"
    finally:
        _remove(engine, base)


def test_an_unreachable_registry_is_a_one_line_error_before_building(tmp_path: Path, engine: Any) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    name = f"lost_{uuid.uuid4().hex[:10]}"
    project_root = copy_project(tmp_path / "p")
    image = f"127.0.0.1:{port}/flowc-test/{name}"
    (project_root / "specs" / f"{name}.yaml").write_text(PROBE_SPEC.format(name=name, image=image, extra=""))
    result = flowc("build", "--no-register", f"specs/{name}.yaml", cwd=project_root)
    assert result.returncode == 1
    # The new spec's files are generated first ("wrote ..."); then one error line and the summary.
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith(f"wrote generated/{name}/")]
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith(f"error: {name}: registry 127.0.0.1:{port} is unreachable: ")
    assert "connection refused" in lines[0]
    assert lines[1] == "0 built, 0 up to date, 1 failed; registration skipped"
    assert "building" not in result.stderr


def test_a_prefect3_project_builds_pushes_and_loads_in_its_image(tmp_path: Path, engine: Any, registry: str) -> None:
    """fan_in3 under a registry image: built FROM the Prefect 3 base image, pushed, pulled back, loaded."""
    import docker

    from compiler.targets.prefect3.checks import PREFECT3_BASE_IMAGE

    try:
        engine.images.get(PREFECT3_BASE_IMAGE)
    except docker.errors.ImageNotFound:
        _unavailable(f"the base image {PREFECT3_BASE_IMAGE} is missing (scripts/base-image.sh {PREFECT3_BASE_IMAGE})")
    name = f"fan_in3_probe_{uuid.uuid4().hex[:8]}"
    repository = f"{registry}/flowc-test/{name}"
    project_root = copy_project(tmp_path / "p")
    text = (project_root / "specs" / "fan_in3.yaml").read_text()
    text = text.replace("name: fan_in3\n", f"name: {name}\n")
    text = text.replace("image: localhost:5000/fan_in3\n", f"image: {repository}\n")
    (project_root / "specs" / f"{name}.yaml").write_text(text)
    spec = f"specs/{name}.yaml"

    first = flowc("build", "--no-register", spec, cwd=project_root)
    assert first.returncode == 0, first.stdout + first.stderr
    [target] = load_targets(find_project(project_root), [project_root / spec])
    try:
        assert target.target == "prefect3"
        assert f"{name}: pushed {target.image}" in first.stderr
        assert first.stderr.splitlines()[-1] == "1 built, 0 up to date, 1 pushed; registration skipped"
        base = engine.images.get(PREFECT3_BASE_IMAGE)
        assert engine.images.get(target.image).history()[-1]["Id"] == base.history()[-1]["Id"]

        engine.images.remove(target.image, force=True)
        pulled = engine.images.pull(repository, tag=target.tag)
        assert pulled.labels["io.flowc.inputs"] == compile_plan(
            (project_root / spec).read_text(), spec, load_lock(find_project(project_root))
        ).inputs_digest
        found = _run(engine, target.image, LOAD_PREFECT3_FLOW)
        assert found == {
            "name": name,
            "signature": ["parameters"],
            "defaults": {"start-factor": 2.0, "start-value": 1.5, "left-factor": 3.0, "right-factor": 5.0},
            "image": target.image,
            "prefect": PREFECT3_BASE_IMAGE.split(":")[1].split("-")[0],
            "flowc": "0.1.0",
            "runtime": "/usr/local/lib/python3.11/site-packages/compiler/targets/prefect3/runtime/__init__.py",
            # flowc's build-time dependencies and Prefect 1's stay out of the image.
            "missing": ["black", "watchfiles", "filelock", "marshmallow"],
        }
    finally:
        _remove(engine, target.image)
