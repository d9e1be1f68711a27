"""`LocalFlowRunner`: Prefect's FlowRunner for the orchestrator of `flowc run`, without the config copies.

Prefect 1 hands every task run a copy of the flow run's context (`dict(prefect.context, ...)`),
which includes Prefect's whole configuration, and each of the three `prefect.context(context)`
entries of a task run (`run_task`, `TaskRunner.run`, its final log) then deep-merges that
configuration into the thread's own and copies it (`merge_dicts`, `Config.copy`): ~85 % of the
~6 ms a trivial task costs, profiled. A local orchestrator run never changes the configuration
per task, and every thread's context already holds the same configuration (Prefect builds each
thread's context from `prefect.config`), so this runner submits the tasks' contexts without it.
The run's parameters reach every task as a read-only view (`MappingProxyType`) instead of a
dict: each TaskRunner copies its whole context deeply (`prefect.context.to_dict()`, through lists
too) and the executor looks for futures in it, so a scan's list of 1,000 values, a composite
parameter, cost every task run 1,000 steps twice, quadratic in the points (profiled: most of the
CPU before a 1,000-point scan's first child). Parameter tasks and result templates only read it.
Everything else (the task runners, states, triggers, retries, results, the executor the flow
gives) is Prefect's own; `flow.run(runner_cls=LocalFlowRunner)` is Prefect's public hook for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

from prefect.engine.flow_runner import FlowRunner
from prefect.executors.base import Executor


class _WithoutConfig(Executor):
    """Delegates to the flow's executor; drops `config` from each task run's context."""

    def __init__(self, inner: Executor) -> None:
        self._inner = inner
        super().__init__()

    @contextmanager
    def start(self) -> Iterator[None]:
        with self._inner.start():
            yield

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        context = kwargs.get("context")
        if isinstance(context, dict) and "config" in context:
            kwargs["context"] = {key: value for key, value in context.items() if key != "config"}
        return self._inner.submit(fn, *args, **kwargs)

    def wait(self, futures: Any) -> Any:
        return self._inner.wait(futures)


class LocalFlowRunner(FlowRunner):
    """Prefect's FlowRunner; the tasks' contexts reach their runners without Prefect's configuration,
    and with the parameters as a view that no task run copies."""

    def initialize_run(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        initialized = super().initialize_run(*args, **kwargs)
        parameters = initialized.context.get("parameters")
        if isinstance(parameters, dict):
            initialized.context["parameters"] = MappingProxyType(dict(parameters))
        return initialized

    def get_flow_run_state(  # type: ignore[override]
        self,
        state: Any,
        task_states: Any,
        task_contexts: Any,
        return_tasks: Any,
        task_runner_state_handlers: Any,
        executor: Executor,
    ) -> Any:
        return super().get_flow_run_state(
            state,
            task_states=task_states,
            task_contexts=task_contexts,
            return_tasks=return_tasks,
            task_runner_state_handlers=task_runner_state_handlers,
            executor=_WithoutConfig(executor),
        )
