"""`LocalThreadExecutor`: Prefect 1's executor interface on threads, in time linear in the flow.

Prefect's `LocalDaskExecutor` turns every task into a `dask.delayed` call whose arguments carry
their upstream graph, and recent dask versions merge and cull that graph on each call: a
500-step chain of flow runs spent 35 s in `submit()` before its first child started, since
nothing starts until every task has been submitted. This executor instead starts each task as
soon as the futures among its arguments have finished, so submitting costs the same for every
task however deep the graph.

Which ready task starts first: the one submitted first. Prefect's FlowRunner submits in
`flow.sorted_tasks()` order, which `IndexedFlow` makes the order of the generated code, so the
first child flow run starts right after its own parameters rather than after every task of the
composition's first level.

Threads: a task thread never waits for an upstream task (a task starts only once its inputs
are done), so no order can deadlock. A new thread is started whenever a task is ready and every
thread is busy, up to `max_workers` (default 256), and idle threads are reused: a composition
whose children all wait at once (`wait_for_flow_run` blocks its thread until the child ends)
still starts every independent child instead of queueing behind a few blocked waits.

A task that blocks on something other tasks will free (a scan's slot, `ScanSlots`) says so with
`blocking()`: while it waits it does not count against `max_workers`, so the tasks that free it
still get a thread.

Kept from `LocalDaskExecutor(scheduler="threads")`: tasks run in threads of this process,
independent tasks run concurrently, `wait()` resolves futures nested in lists, tuples, sets and
dict values, and an early exit (an interrupt) cancels what has not started.
Depends on the standard library and prefect only.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

from prefect.executors.base import Executor

DEFAULT_MAX_WORKERS = 256
_CURRENT = threading.local()  # the pool whose thread this is, for blocking()


@contextmanager
def blocking() -> Iterator[None]:
    """Mark the current task as waiting for other tasks; a no-op outside this executor's threads."""
    pool = getattr(_CURRENT, "pool", None)
    if pool is None:
        yield
        return
    pool.blocked(+1)
    try:
        yield
    finally:
        pool.blocked(-1)


class LocalThreadExecutor(Executor):
    """Runs each submitted function on a thread once every future among its arguments is done;
    of the ready ones, the earliest submitted first."""

    def __init__(self, max_workers: int = DEFAULT_MAX_WORKERS) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        self._pool: _PriorityThreads | None = None
        self._sequence = itertools.count()
        super().__init__()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_pool"] = None
        state["_sequence"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._sequence = itertools.count()

    @contextmanager
    def start(self) -> Iterator[None]:
        pool = _PriorityThreads(self.max_workers)
        self._pool = pool
        try:
            yield
        except BaseException:
            pool.shutdown(wait=False, cancel_pending=True)
            raise
        else:
            pool.shutdown(wait=True, cancel_pending=False)
        finally:
            self._pool = None

    def submit(self, fn: Callable[..., Any], *args: Any, extra_context: dict | None = None, **kwargs: Any) -> Future:
        """A future of `fn(*args, **kwargs)`, with every future in the arguments replaced by its result."""
        pool = self._pool
        if pool is None:
            raise RuntimeError("LocalThreadExecutor.submit() called outside its start() block")
        priority = next(self._sequence)
        result: Future = Future()

        def job() -> None:
            if not result.set_running_or_notify_cancel():
                return
            try:
                value = fn(*_resolve(args), **_resolve(kwargs))
            except BaseException as error:  # noqa: BLE001 - handed to whoever waits on the future
                result.set_exception(error)
            else:
                result.set_result(value)

        upstream = _futures_in((args, kwargs))
        if not upstream:
            pool.put(priority, job, result)
            return result
        remaining = [len(upstream)]
        lock = threading.Lock()

        def one_done(_: Future) -> None:
            with lock:
                remaining[0] -= 1
                ready = remaining[0] == 0
            if ready:
                pool.put(priority, job, result)

        for future in upstream:
            future.add_done_callback(one_done)
        return result

    def wait(self, futures: Any) -> Any:
        """`futures` with every future in it (in lists, tuples, sets, dict values) replaced by its result."""
        return _resolve(futures)


class _PriorityThreads:
    """Threads that run queued jobs lowest priority number first, started on demand."""

    def __init__(self, max_workers: int) -> None:
        self.max_workers = max_workers
        self._queue: list[tuple[int, Callable[[], None], Future]] = []
        self._condition = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for a job that no put() has claimed yet
        self._blocked = 0  # threads inside blocking(): not counted against max_workers
        self._closed = False

    def blocked(self, change: int) -> None:
        with self._condition:
            self._blocked += change
            if change > 0 and self._queue and not self._idle:
                self._start_thread()

    def put(self, priority: int, job: Callable[[], None], future: Future) -> None:
        with self._condition:
            if self._closed:
                future.cancel()
                future.set_running_or_notify_cancel()
                return
            heapq.heappush(self._queue, (priority, job, future))
            if self._idle:
                self._idle -= 1
                self._condition.notify()
            elif len(self._threads) - self._blocked < self.max_workers:
                self._start_thread()

    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._work, name=f"flowc-task-{len(self._threads)}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        _CURRENT.pool = self
        while True:
            with self._condition:
                while not self._queue and not self._closed:
                    self._idle += 1
                    self._condition.wait()
                if not self._queue:
                    return
                _, job, _ = heapq.heappop(self._queue)
            job()

    def shutdown(self, *, wait: bool, cancel_pending: bool) -> None:
        with self._condition:
            if cancel_pending:
                for _, _, future in self._queue:
                    future.cancel()
                    future.set_running_or_notify_cancel()
                self._queue.clear()
            self._closed = True
            self._condition.notify_all()
            threads = list(self._threads)
        if wait:
            for thread in threads:
                thread.join()


def _futures_in(value: Any) -> list[Future]:
    """Distinct futures in a nest of lists, tuples, sets and dict values."""
    found: dict[int, Future] = {}
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Future):
            found.setdefault(id(item), item)
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return list(found.values())


def _resolve(value: Any) -> Any:
    if isinstance(value, Future):
        return value.result()
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    if isinstance(value, tuple):
        items = [_resolve(v) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    if isinstance(value, (set, frozenset)):
        return type(value)(_resolve(v) for v in value)
    if isinstance(value, dict):
        return {k: _resolve(v) for k, v in value.items()}
    return value
