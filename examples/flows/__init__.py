"""Small, real child flows modelled on a LUME pipeline (distgen -> impact -> analysis).

Each module defines a module-level `flow` (lume_test defines `flow1`, `flow2`, `flow3`), the
`module:attribute` a spec's `source` names. Every task another flow maps persists its result
(`PrefectResult`, `checkpoint=True`).
"""
