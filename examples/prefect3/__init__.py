"""Prefect 3 versions of the example child flows (they run on Prefect 2.14 too).

The same computations as examples/flows/ (Prefect 1), so a composition gives the same numbers on
both targets. Results that another flow run maps are persisted (`persist_result=True`).
"""
