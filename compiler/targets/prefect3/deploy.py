"""`flowc build` for prefect3 projects: create or update each composite's deployment.

What is deployed is what `generated/<name>/prefect.yaml` says (the reviewed file), on the server
PREFECT_API_URL names, through deployer.py in the Prefect 3 interpreter (flowc's own environment
holds Prefect 1). The deployment's `version` is the inputs digest's tag, so an unchanged project is
reported `unchanged` and left alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from compiler.fingerprint import read_header

DEPLOYER = Path(__file__).resolve().parent / "deployer.py"
API_URL_ENV = "PREFECT_API_URL"
TIMEOUT_S = 600


class DeployFailure(Exception):
    """Nothing could be deployed (no server configured, no interpreter); one line for the user."""


@dataclass(frozen=True)
class Outcome:
    name: str
    status: str  # created | updated | unchanged | failed
    detail: str


def deployment_request(directory: Path) -> dict[str, Any]:
    """The deployer's request for generated/<name>/, read from its prefect.yaml."""
    text = (directory / "prefect.yaml").read_text(encoding="utf-8")
    parsed = read_header(text)
    if parsed is None:
        raise DeployFailure(f"{directory / 'prefect.yaml'} has no flowc header; run `flowc generate`")
    document = yaml.safe_load(text)
    deployment = document["deployments"][0]
    pull = document["pull"][0]["prefect.deployments.steps.set_working_directory"]
    return {
        "flow_name": deployment["entrypoint"].rpartition(":")[2],
        "name": deployment["name"],
        "entrypoint": deployment["entrypoint"],
        "description": deployment.get("description"),
        "tags": deployment.get("tags") or [],
        "parameters": deployment.get("parameters") or {},
        "work_pool": deployment["work_pool"]["name"],
        "job_variables": deployment["work_pool"].get("job_variables") or {},
        "version": parsed[0].inputs.removeprefix("sha256:")[:16],
        "local_directory": str(directory.resolve()),
        "image_directory": pull["directory"],
    }


def deploy(directories: list[Path], python: str) -> list[Outcome]:
    """Deploy every project in one process of the Prefect 3 interpreter."""
    if not os.environ.get(API_URL_ENV):
        raise DeployFailure(
            f"{API_URL_ENV} is not set: prefect3 deployments go to the server it names "
            "(e.g. http://127.0.0.1:4200/api); or pass --no-register"
        )
    requests = [deployment_request(directory) for directory in directories]
    with tempfile.TemporaryDirectory(prefix="flowc-deploy-") as scratch:
        request_path, answer_path = Path(scratch) / "request.json", Path(scratch) / "answer.json"
        request_path.write_text(json.dumps({"deployments": requests}), encoding="utf-8")
        try:
            done = subprocess.run(
                [python, str(DEPLOYER), str(request_path), str(answer_path)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                start_new_session=True,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise DeployFailure(f"the Prefect 3 interpreter {python!r} could not deploy: {error}") from None
        try:
            answers = json.loads(answer_path.read_text(encoding="utf-8"))["deployments"]
        except (OSError, ValueError, KeyError):
            tail = " ".join((done.stderr or done.stdout).split()[-40:])
            raise DeployFailure(f"the Prefect 3 interpreter {python!r} did not answer: {tail}") from None
    outcomes = []
    for request, answer in zip(requests, answers):
        name = f"{request['flow_name']}/{request['name']}"
        if answer.get("ok"):
            where = "code on this machine" if answer.get("pool_type") == "process" else "the image"
            detail = f"work pool {request['work_pool']!r} ({answer.get('pool_type')}: {where}), version {request['version']}"
            outcomes.append(Outcome(name, answer["status"], detail))
        else:
            outcomes.append(Outcome(name, "failed", str(answer.get("error"))))
    return outcomes
