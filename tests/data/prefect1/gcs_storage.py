# Adapted from PrefectHQ/prefect 1.4.1, docs/orchestration/flow_config/storage.md ("Google Cloud
# Storage"), Apache-2.0: a flow with GCS storage and no result, so `prefect register` gives every
# task a GCSResult. The task is added so that there is something to map.
from prefect import Flow, task
from prefect.storage import GCS


@task
def produce():
    return 3


flow = Flow("gcs-flow", storage=GCS(bucket="<my-bucket>"))
flow.add_task(produce)
