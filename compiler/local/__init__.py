"""`flowc run`: a composition on this machine, each child flow in a process of its own.

- prepare.py    the spec, generated flow.py, lock and `-p` parameters, checked before anything runs
- engine.py     `LocalFlowRunner`: Prefect's FlowRunner without the per-task config copies
- backend.py    Prefect's orchestration tasks answered locally (`ProcessBackend`)
- results.py    loading a value a child reported, through its own Result class
- supervise.py  child processes: launchers (fork server, spawn), output, timeouts, stopping
- forkclient.py the fork server from flowc's side, and its source servers (a source imported once)
- summary.py    progress lines, the summary table, `--json`
- run.py        the command: the orchestrator under Prefect's engine, signals, `--timeout`
"""
