"""Create or update one deployment on the Prefect server PREFECT_API_URL names (2.14 or 3.x).

Runs in the Prefect 3 interpreter, loaded by path (`flowc build` starts it; the e2e tests deploy
the example children with it): Prefect and the standard library only.

    python deployer.py REQUEST.json ANSWER.json

The request is {"deployments": [...]}, the answer {"deployments": [...]} in the same order. Each
holds what prefect.yaml says (flow, deployment, entrypoint, work pool, parameters,
tags, image) and the deployment's `version` (flowc's inputs digest). A deployment whose version,
entrypoint, code location, pool, parameters and tags already match is left `unchanged`. A
`process` pool's worker runs the code where it lies on this machine (`local_directory`); any other
pool's workers run the image, whose code is in `image_directory`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import sys
import traceback
from typing import Any, Dict, List


def main(argv: List[str]) -> int:
    request_path, answer_path = argv[0], argv[1]
    with open(request_path, encoding="utf-8") as handle:
        request = json.load(handle)
    answers = [_answer(item) for item in request["deployments"]]
    with open(answer_path, "w", encoding="utf-8") as handle:
        json.dump({"deployments": answers}, handle)
    return 0


def _answer(request: Dict[str, Any]) -> Dict[str, Any]:
    try:
        return asyncio.run(deploy(request))
    except Exception as error:  # noqa: BLE001 - one line for flowc, never a traceback
        frames = traceback.extract_tb(error.__traceback__)
        where = f" ({os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
        return {"ok": False, "error": f"{type(error).__name__}: {' '.join(str(error).split())[:500]}{where}"}


async def deploy(request: Dict[str, Any]) -> Dict[str, Any]:
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            pool = await client.read_work_pool(request["work_pool"])
        except ObjectNotFound:
            return {"ok": False, "error": f"the server has no work pool {request['work_pool']!r}"}
        local = pool.type == "process"
        directory = request["local_directory"] if local else request["image_directory"]
        job_variables = dict(request.get("job_variables") or {})
        if local:
            job_variables.pop("image", None)
        pull_steps = [{"prefect.deployments.steps.set_working_directory": {"directory": directory}}]
        wanted = {
            "version": request["version"],
            "entrypoint": request["entrypoint"],
            "work_pool_name": request["work_pool"],
            "parameters": request.get("parameters") or {},
            "tags": sorted(request.get("tags") or []),
            "pull_steps": pull_steps,
            "job_variables": job_variables,
        }
        name = f"{request['flow_name']}/{request['name']}"
        try:
            existing = await client.read_deployment_by_name(name)
        except ObjectNotFound:
            existing = None
        if existing is not None and _current(existing) == wanted:
            return {"ok": True, "status": "unchanged", "id": str(existing.id), "pool_type": pool.type}
        schema = _parameter_schema(os.path.join(request["local_directory"], request["entrypoint"]))
        flow_id = await client.create_flow_from_name(request["flow_name"])
        options: Dict[str, Any] = {
            "version": wanted["version"],
            "parameters": wanted["parameters"],
            "description": request.get("description"),
            "work_pool_name": wanted["work_pool_name"],
            "tags": wanted["tags"],
            "entrypoint": wanted["entrypoint"],
            "parameter_openapi_schema": schema,
            "pull_steps": pull_steps,
            "enforce_parameter_schema": False,
        }
        # 3.x calls them job_variables; 2.14 infra_overrides.
        accepted = inspect.signature(client.create_deployment).parameters
        options["job_variables" if "job_variables" in accepted else "infra_overrides"] = job_variables
        deployment_id = await client.create_deployment(flow_id, request["name"], **options)
        status = "created" if existing is None else "updated"
        return {"ok": True, "status": status, "id": str(deployment_id), "pool_type": pool.type}


def _current(deployment: Any) -> Dict[str, Any]:
    job_variables = getattr(deployment, "job_variables", None)
    if job_variables is None:
        job_variables = getattr(deployment, "infra_overrides", None)
    return {
        "version": deployment.version,
        "entrypoint": deployment.entrypoint,
        "work_pool_name": deployment.work_pool_name,
        "parameters": deployment.parameters or {},
        "tags": sorted(deployment.tags or []),
        "pull_steps": deployment.pull_steps,
        "job_variables": dict(job_variables or {}),
    }


def _parameter_schema(entrypoint: str) -> Dict[str, Any]:
    """The flow's parameters as the server shows them (loading the flow as a worker does)."""
    from prefect.flows import load_flow_from_entrypoint
    from prefect.utilities.callables import parameter_schema

    sys.path.insert(0, os.path.dirname(entrypoint.rpartition(":")[0]))
    flow = load_flow_from_entrypoint(entrypoint)
    schema = parameter_schema(flow.fn)
    return schema.model_dump() if hasattr(schema, "model_dump") else schema.dict()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
