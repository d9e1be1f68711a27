"""digits: parameters whose names are not Python names (`a:b`, `a/b`), for specs/python_names.yaml.

Each parameter is one decimal digit of the result, so a value that reached the wrong parameter
shows in the number.
"""

from __future__ import annotations

from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult


@task(name="digits", result=PrefectResult(), checkpoint=True)
def digits(colon: float, slash: float, b_c: float, c: float) -> float:
    """`1000 * a:b + 100 * a/b + 10 * b_c + c`."""
    return 1000 * float(colon) + 100 * float(slash) + 10 * float(b_c) + float(c)


with Flow("digits") as flow:
    colon = Parameter("a:b", default=1.0)
    slash = Parameter("a/b", default=2.0)
    b_c = Parameter("b_c", default=3.0)
    c = Parameter("c", default=4.0)
    digits(colon, slash, b_c, c)
