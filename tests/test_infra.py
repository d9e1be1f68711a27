"""The machine-level services that CI starts (scripts/*.sh, .ci/run) really work.

Skipped unless DOCKER_HOST is set or FLOWC_INTEGRATION=1. With FLOWC_INTEGRATION=1
("the docker/registry/mongo services are up") an unreachable service is a failure,
never a skip.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest

BASE_IMAGE = os.environ.get("FLOWC_BASE_IMAGE", "prefecthq/prefect:1.4.1-python3.10")
INTEGRATION = os.environ.get("FLOWC_INTEGRATION") == "1"
ENABLED = INTEGRATION or bool(os.environ.get("DOCKER_HOST"))

pytestmark = pytest.mark.skipif(
    not ENABLED,
    reason="integration: set FLOWC_INTEGRATION=1 or DOCKER_HOST (see .ci/run)",
)


def _unavailable(message: str) -> NoReturn:
    """Fail under FLOWC_INTEGRATION=1 (the services must be up), skip otherwise."""
    if INTEGRATION:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def docker_client() -> Iterator[Any]:
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - docker is a dependency
        _unavailable(f"the docker SDK is not installed: {exc}")
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
        _unavailable(
            f"no Docker engine at DOCKER_HOST={os.environ.get('DOCKER_HOST')!r}: {exc}"
        )
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def registry() -> str:
    address = os.environ.get("FLOWC_TEST_REGISTRY", "")
    if not address:
        _unavailable("FLOWC_TEST_REGISTRY is not set (scripts/registry.sh start)")
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=5) as response:
            assert response.status == 200
    except Exception as exc:  # noqa: BLE001
        _unavailable(f"no registry answers at http://{address}/v2/: {exc}")
    return address


def test_base_image_exists(docker_client: Any) -> None:
    image = docker_client.images.get(BASE_IMAGE)
    assert BASE_IMAGE in image.tags
    assert image.attrs["Size"] < 450_000_000, "the base image grew past ~400 MB"


def test_base_image_runs_prefect_1_4_1(docker_client: Any) -> None:
    output = docker_client.containers.run(
        BASE_IMAGE,
        ["python", "-c", "import prefect; print(prefect.__version__)"],
        remove=True,
        network_disabled=True,
    )
    assert output.decode().strip() == "1.4.1"


def test_prefect3_base_image_runs_its_prefect_from_wheels_without_compilers(docker_client: Any) -> None:
    """scripts/base-image.sh's Prefect 3 recipe: the tag's Prefect, its CLI on PATH, no gcc left in."""
    from compiler.targets.prefect3.checks import PREFECT3_BASE_IMAGE

    try:
        image = docker_client.images.get(PREFECT3_BASE_IMAGE)
    except Exception as exc:  # noqa: BLE001 - docker.errors.ImageNotFound
        _unavailable(f"{PREFECT3_BASE_IMAGE} is missing (scripts/base-image.sh {PREFECT3_BASE_IMAGE}): {exc}")
    assert image.attrs["Size"] < 500_000_000, "the Prefect 3 base image grew past ~420 MB"
    code = (
        "import json, shutil, sys, prefect; print(json.dumps([prefect.__version__, sys.version_info[:2], "
        "shutil.which('prefect'), shutil.which('gcc')]))"
    )
    output = docker_client.containers.run(
        PREFECT3_BASE_IMAGE, ["python", "-c", code], remove=True, network_disabled=True
    )
    version = PREFECT3_BASE_IMAGE.split(":")[1].split("-")[0]
    assert json.loads(output.decode().strip()) == [version, [3, 11], "/usr/local/bin/prefect", None]


def _tiny_context() -> io.BytesIO:
    """A build context for an image that needs no base: FROM scratch + one file."""
    marker = uuid.uuid4().hex.encode()
    files = {
        "Dockerfile": b"FROM scratch\nCOPY marker.txt /marker.txt\n",
        "marker.txt": marker + b"\n",
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def test_push_and_pull_through_local_registry(
    docker_client: Any, registry: str
) -> None:
    repository = f"{registry}/flowc-infra-test"
    tag = uuid.uuid4().hex[:12]
    reference = f"{repository}:{tag}"
    image, _ = docker_client.images.build(
        fileobj=_tiny_context(), custom_context=True, tag=reference, rm=True
    )
    built_id = image.id
    try:
        errors = [
            line
            for line in docker_client.images.push(
                repository, tag=tag, stream=True, decode=True
            )
            if "error" in line or "errorDetail" in line
        ]
        assert not errors, errors

        with urllib.request.urlopen(
            f"http://{registry}/v2/flowc-infra-test/tags/list", timeout=5
        ) as response:
            assert tag in json.load(response)["tags"]

        docker_client.images.remove(reference, force=True)
        with pytest.raises(Exception):  # docker.errors.ImageNotFound
            docker_client.images.get(reference)

        pulled = docker_client.images.pull(repository, tag=tag)
        assert pulled.id == built_id
    finally:
        try:
            docker_client.images.remove(reference, force=True)
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass
