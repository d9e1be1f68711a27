# Adapted from PrefectHQ/prefect 1.4.1, docs/core/concepts/results.md (the `my_task` example), Apache-2.0.
# The task is as the docs write it; the flow around it is added so that it can be composed.
from prefect import Flow, task
from prefect.engine.results import LocalResult


@task(result=LocalResult(dir='~/Desktop/HelloWorld/results'))
def my_task():
    return 3


with Flow("local-result-flow") as flow:
    my_task()
