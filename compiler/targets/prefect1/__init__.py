"""The prefect1 backend: a Prefect 1 flow of `create_flow_run`s (`render.py`, `scans.py` for
per-point steps, templates/prefect1/), its own checks (`checks.py`) and registration through
Prefect's own machinery (`register.py`). Its runtime is compiler/runtime/."""
