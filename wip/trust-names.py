import re
p='/work/wt/trust/compiler/plan.py'
s=open(p).read()
# Step: variables field + properties reading it
old='''    timeout_s: float | None = None
    deployment: str | None = None

    @property
    def run_variable(self) -> str:
        return f"{self.alias}_run"

    @property
    def done_variable(self) -> str:
        return f"{self.alias}_done"
'''
new='''    timeout_s: float | None = None
    deployment: str | None = None
    # (run, done) Python names, when the planner had to move them off a collision.
    variables: tuple[str, str] | None = None

    @property
    def run_variable(self) -> str:
        return self.variables[0] if self.variables else f"{self.alias}_run"

    @property
    def done_variable(self) -> str:
        return self.variables[1] if self.variables else f"{self.alias}_done"
'''
assert old in s; s=s.replace(old,new)
old='''        self._check_names(steps)
        if self.problems:'''
new='''        steps = assign_variables(steps)
        if self.problems:'''
assert old in s; s=s.replace(old,new)
start=s.index('    def _check_names(self, steps: list[Step]) -> None:')
end=s.index('def _names_of(step: Step)')
s=s[:start].rstrip()+"\n\n\n"+'''def assign_variables(steps: list[Step]) -> list[Step]:
    """Python names for everything flow.py defines, unique and clear of flowc's own names.

    Names come from the spec (`<alias>_run`, `<alias>_<param>`); when two would be equal (`a` +
    `b_c` and `a_b` + `c`; parameters `a:b` and `a/b`) or one is reserved, the later one in plan
    order gets the first free `_2`, `_3`, ... suffix. Deterministic, and never the user's problem.
    """
    taken: set[str] = set(RESERVED_NAMES)

    def claim(wanted: str) -> str:
        name, number = wanted, 1
        while name in taken or keyword.iskeyword(name):
            number += 1
            name = f"{wanted}_{number}"
        taken.add(name)
        return name

    assigned = []
    for step in steps:
        run, done = claim(step.run_variable), claim(step.done_variable)
        parameters = tuple(replace(p, variable=claim(p.variable)) for p in step.parameters)
        inputs = tuple(replace(m, variable=claim(m.variable)) for m in step.inputs)
        by_parameter = {p.child_parameter: p.variable for p in parameters}
        by_parameter.update({m.parameter: m.variable for m in inputs})
        arguments = tuple((name, by_parameter.get(name, variable)) for name, variable in step.arguments)
        variables = None if (run, done) == (step.run_variable, step.done_variable) else (run, done)
        assigned.append(replace(step, parameters=parameters, inputs=inputs, arguments=arguments, variables=variables))
    return assigned


'''+s[end:]
# drop _names_of (unused now)
start=s.index('def _names_of(step: Step)')
end=s.index('def _variable(alias: str, parameter: str)')
s=s[:start]+s[end:]
s=s.replace("from dataclasses import dataclass\n","from dataclasses import dataclass, replace\n")
s=s.replace("from typing import Any, Iterator\n","from typing import Any\n")
open(p,'w').write(s)
