"""The prefect3 target: Prefect 3 (and 2.14) projects from the same plan as prefect1.

`render` and `checks` run in flowc; `runtime/` runs in the Prefect 3 environment (generated
flows and child flows import it); `introspect` runs in the children's interpreter for `flowc lock`.
Nothing is imported here, so each of them imports only what it needs.
"""
