"""Spec + lock -> Plan: resolve every step, mapping and parameter, or say where the spec is wrong."""

from __future__ import annotations

import graphlib
import re
from dataclasses import replace

from compiler.diagnostics import CompileError, Diagnostic, did_you_mean
from compiler.lockfile import NOWHERE, ONE_MACHINE, FlowInterface, Lock
from compiler.names import assign_python_names
from compiler.plan import CompositeParameter, MappedInput, Plan, Step
from compiler.scanplan import POINT_PARAMETER_NAMES, check_scan, scan_axes
from compiler.spec import ComposingFlow, MappedParameter, ParsedSpec, Path, duration_seconds
from compiler.values import ValueRejected, normalize


def build_plan(parsed: ParsedSpec, lock: Lock, inputs_digest: str) -> Plan:
    """Resolve a validated spec against the lock; raises CompileError with every problem."""
    return _Planner(parsed, lock).plan(inputs_digest)


class _Planner:
    def __init__(self, parsed: ParsedSpec, lock: Lock) -> None:
        self.spec = parsed.spec
        self.where = parsed.where
        self.lock = lock
        self.problems: list[Diagnostic] = []
        self._positions: tuple[list[int], dict[int, int]] | None = None

    def error(self, path: Path, message: str, *, key: bool = False) -> None:
        self.problems.append(self.where.at(path, message, key=key))

    def plan(self, inputs_digest: str) -> Plan:
        flows = self.spec.composing_flows
        aliases = self._aliases(flows)
        interfaces = {i: self._interface(i, flow) for i, flow in enumerate(flows)}
        self._check_sources(flows, interfaces)
        upstream: dict[int, dict[int, Path]] = {i: {} for i in range(len(flows))}
        steps_inputs: dict[int, tuple[MappedInput, ...]] = {}
        for_each: dict[int, int] = {}
        for index, flow in enumerate(flows):
            base: Path = ("composing_flows", index)
            inputs = []
            for param_name, mapped in flow.mapped_parameters.items():
                path = base + ("mapped_parameters", param_name)
                resolved = self._mapped_input(index, flow, param_name, mapped, path, aliases, interfaces)
                if resolved is not None:
                    parent_index, mapped_input = resolved
                    upstream[index].setdefault(parent_index, path + ("parent_flow_name",))
                    inputs.append(mapped_input)
            steps_inputs[index] = tuple(inputs)
            for position, parent_name in enumerate(flow.depends_on):
                path = base + ("depends_on", position)
                parent_index = self._resolve_step(parent_name, path, aliases, flows)
                if parent_index is not None:
                    upstream[index].setdefault(parent_index, path)
            if flow.for_each is not None:
                path = base + ("for_each",)
                parent_index = self._resolve_step(flow.for_each, path, aliases, flows)
                if parent_index is not None:
                    for_each[index] = parent_index
                    upstream[index].setdefault(parent_index, path)
        order = self._order(flows, upstream)
        lineage = self._lineage(flows, order, for_each)
        by_alias = {flow.step_name: i for i, flow in enumerate(flows)}
        steps_inputs = {i: self._point_inputs(i, by_alias, inputs, lineage) for i, inputs in steps_inputs.items()}
        steps = []
        for index in order:
            step = self._step(index, flows[index], interfaces[index], steps_inputs[index], upstream[index], order)
            for_each_alias = flows[for_each[index]].step_name if index in for_each else None
            lineage_alias = flows[lineage[index]].step_name if index in lineage else None
            depends_on = tuple(alias for alias in step.depends_on if alias != for_each_alias)
            steps.append(replace(step, for_each=for_each_alias, lineage=lineage_alias, depends_on=depends_on))
        steps = assign_python_names(steps)
        if self.problems:
            raise CompileError(self.problems)
        return Plan(
            name=self.spec.name,
            spec_path=self.where.path,
            project_name=self.spec.project_name,
            labels=tuple(self.spec.labels),
            image_repository=self.spec.image_repository,
            image_tag=inputs_digest.removeprefix("sha256:")[:16],
            base_image=self.spec.base_image,
            run_config=self.spec.run_config,
            env=tuple(sorted(self.spec.env.items())),
            steps=tuple(steps),
            inputs_digest=inputs_digest,
            target=self.spec.target,
            work_pool=self.spec.work_pool or "default",
        )

    # Names ------------------------------------------------------------------------------------

    def _aliases(self, flows: list[ComposingFlow]) -> dict[str, int]:
        aliases: dict[str, int] = {}
        for index, flow in enumerate(flows):
            alias = flow.step_name
            path: Path = ("composing_flows", index, "alias" if flow.alias else "name")
            if flow.alias is None and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", flow.name):
                self.error(path, f"flow name {flow.name!r} is not a valid step name; give this step an `alias:`")
                continue
            if alias in aliases:
                first = aliases[alias]
                self.error(
                    path,
                    f"duplicate step {alias!r} (also composing_flows[{first}]); give one of them another `alias:`",
                )
                continue
            aliases[alias] = index
        return aliases

    def _resolve_step(
        self, reference: str, path: Path, aliases: dict[str, int], flows: list[ComposingFlow] | None = None
    ) -> int | None:
        flows = flows if flows is not None else self.spec.composing_flows
        if reference in aliases:
            return aliases[reference]
        by_name = [i for i, flow in enumerate(flows) if flow.name == reference and flow.step_name in aliases]
        if len(by_name) == 1:
            return by_name[0]
        if len(by_name) > 1:
            names = ", ".join(repr(flows[i].step_name) for i in by_name)
            self.error(path, f"{reference!r} is composed more than once ({names}); name the step by its alias")
            return None
        self.error(path, f"flow {reference!r} is not a step of this spec{did_you_mean(reference, aliases)}")
        return None

    def _interface(self, index: int, flow: ComposingFlow) -> FlowInterface | None:
        interface = self.lock.get(flow.project_name, flow.name)
        if interface is None:
            hint = "run `flowc lock`" if flow.source else "add a `source:` and run `flowc lock`"
            self.error(
                ("composing_flows", index, "name"),
                f"flow {flow.lock_key!r} is not in the lock ({self.lock.path}); {hint}",
            )
        return interface

    def _check_sources(self, flows: list[ComposingFlow], interfaces: dict[int, FlowInterface | None]) -> None:
        """One flow has one source: in this spec, and the one the lock captured it from."""
        first: dict[str, int] = {}
        for index, flow in enumerate(flows):
            if not flow.source:
                continue
            path: Path = ("composing_flows", index, "source")
            seen = first.setdefault(flow.lock_key, index)
            if flows[seen].source != flow.source:
                self.error(
                    path,
                    f"{flow.lock_key} has source {flow.source!r} here but {flows[seen].source!r} in "
                    f"composing_flows[{seen}]; one flow has one source (compose another flow name for another source)",
                )
                continue
            locked = interfaces[index]
            if locked is not None and locked.source != flow.source:
                captured = f"from {locked.source!r}" if locked.source else "from the Prefect backend"
                self.error(path, f"the lock captured {flow.lock_key} {captured}, not {flow.source!r}; run `flowc lock`")

    # Mappings ---------------------------------------------------------------------------------

    def _mapped_input(
        self,
        index: int,
        flow: ComposingFlow,
        param_name: str,
        mapped: MappedParameter,
        path: Path,
        aliases: dict[str, int],
        interfaces: dict[int, FlowInterface | None],
    ) -> tuple[int, MappedInput] | None:
        child = interfaces[index]
        ok = True
        if child is not None and child.parameter(param_name) is None:
            names = [p.name for p in child.parameters]
            self.error(
                path,
                f"flow {flow.name!r} has no parameter {param_name!r}{did_you_mean(param_name, names)}",
                key=True,
            )
            ok = False
        if param_name in flow.parameters:
            self.error(
                ("composing_flows", index, "parameters", param_name),
                f"parameter {param_name!r} is mapped from another flow; a default for it has no effect",
                key=True,
            )
            ok = False
        attribute_index = mapped.full_attribute_index
        if mapped.map_type == "db" and not attribute_index:
            self.error(path + ("map_type",), "a db mapping needs `attribute_index` (e.g. [outputs, end_norm_emit_x])")
            ok = False
        if mapped.map_type != "db" and attribute_index:
            key = "attribute_index" if mapped.attribute_index is not None else "attribute"
            self.error(path + (key,), f"`{key}` applies to db mappings only (this one is {mapped.map_type})", key=True)
            ok = False
        parent_index = self._resolve_step(mapped.parent_flow_name, path + ("parent_flow_name",), aliases)
        if parent_index is None:
            return None
        parent_flow = self.spec.composing_flows[parent_index]
        if mapped.parent_project_name is not None and mapped.parent_project_name != parent_flow.project_name:
            self.error(
                path + ("parent_project_name",),
                f"parent_project_name {mapped.parent_project_name!r} does not match "
                f"{parent_flow.step_name!r}'s project {parent_flow.project_name!r}",
            )
            ok = False
        task = self._parent_task(mapped, path, parent_flow, interfaces[parent_index])
        if task is None or not ok:
            return parent_index, _placeholder(param_name, flow.step_name, parent_flow.step_name, mapped)
        task_name, task_slug, note = task
        return parent_index, MappedInput(
            parameter=param_name,
            variable=_variable(flow.step_name, param_name),
            parent=parent_flow.step_name,
            task_name=task_name,
            task_slug=task_slug,
            map_type=mapped.map_type,
            attribute_index=attribute_index,
            note=note,
        )

    def _parent_task(
        self, mapped: MappedParameter, path: Path, parent_flow: ComposingFlow, parent: FlowInterface | None
    ) -> tuple[str, str, str | None] | None:
        """(task name, slug, note) of the value a mapping takes: a task's persisted result, or
        one of the parent's Parameters (Prefect persists those as PrefectResult)."""
        if (mapped.parent_task_name is None) == (mapped.parent_task_slug is None):
            which = "both" if mapped.parent_task_name else "neither"
            self.error(path, f"give exactly one of parent_task_name and parent_task_slug ({which} given)")
            return None
        if parent is None:
            return None
        parent_label = parent_flow.step_name
        by_slug = mapped.parent_task_slug is not None
        key = path + ("parent_task_slug" if by_slug else "parent_task_name",)
        wanted = (mapped.parent_task_slug if by_slug else mapped.parent_task_name) or ""
        task = parent.task_with_slug(wanted) if by_slug else parent.task_named(wanted)
        parameter = parent.parameter(wanted)
        if task is None and parameter is not None:
            return parameter.name, parameter.name, None
        if task is None:
            if by_slug:
                slugs = [s for t in parent.tasks for s in t.slugs] + [p.name for p in parent.parameters]
                self.error(key, f"flow {parent_label!r} has no task with slug {wanted!r}{did_you_mean(wanted, slugs)}")
            else:
                names = [t.name for t in parent.tasks] + [p.name for p in parent.parameters]
                self.error(key, f"flow {parent_label!r} has no task {wanted!r}{did_you_mean(wanted, names)}")
            return None
        if not by_slug and parameter is not None:
            self.error(
                key,
                f"{parent_label!r} has both a task and a parameter named {wanted!r}; choose one with parent_task_slug "
                f"({', '.join(task.slugs)} for the task, {wanted} for the parameter)",
            )
            return None
        if not by_slug and len(task.slugs) > 1:
            self.error(
                key,
                f"task {wanted!r} of {parent_label!r} has several slugs ({', '.join(task.slugs)}); "
                "choose one with parent_task_slug",
            )
            return None
        slug = wanted if by_slug else task.slugs[0]
        result = task.slug_result(slug)
        if result.loadable == NOWHERE:
            kind = "checkpoint=False" if not result.checkpoint else (result.result or "no result")
            if result.checkpoint and result.result is None and result.origin:
                kind += f", {result.origin} has no default result"
            label = f"task {task.name!r}" + (f" ({slug})" if len(task.slugs) > 1 else "")
            self.error(
                key,
                f"{label} of {parent_label!r} does not persist a result another flow run can load "
                f"({kind}); give it result=PrefectResult() (or a Result with a location: S3Result, GCSResult, "
                "LocalResult on one machine) and do not disable checkpointing",
            )
            return None
        note = None
        if result.loadable == ONE_MACHINE:
            note = f"{result.result}: needs the children's files on one machine (flowc run, a local agent, a shared volume)"
        return task.name, slug, note

    # Scans ------------------------------------------------------------------------------------

    def _lineage(self, flows: list[ComposingFlow], order: list[int], for_each: dict[int, int]) -> dict[int, int]:
        """Per-point steps -> the scanned step whose points they run over."""
        lineage: dict[int, int] = {}
        for index in order:
            flow = flows[index]
            if flow.scan is not None:
                lineage[index] = index
            elif index in for_each:
                parent = for_each[index]
                if parent in lineage:
                    lineage[index] = lineage[parent]
                else:
                    self.error(
                        ("composing_flows", index, "for_each"),
                        f"for_each names {flows[parent].step_name!r}, which is not scanned "
                        "(nor for_each of a scanned step); give it a `scan:`",
                    )
        return lineage

    def _point_inputs(
        self, index: int, by_alias: dict[str, int], inputs: tuple[MappedInput, ...], lineage: dict[int, int]
    ) -> tuple[MappedInput, ...]:
        """Mark each mapping: the matching point's value (same scan), or gathered into a list."""
        marked = []
        for mapped in inputs:
            parent = by_alias.get(mapped.parent)
            parent_scan = lineage.get(parent) if parent is not None else None
            if parent_scan is None:
                marked.append(mapped)
            elif lineage.get(index) == parent_scan:
                if mapped.parameter in POINT_PARAMETER_NAMES:
                    self.error(
                        ("composing_flows", index, "mapped_parameters", mapped.parameter),
                        f"a value mapped per point cannot be named {mapped.parameter!r} "
                        f"(flowc's point_parameters task takes {' and '.join(sorted(POINT_PARAMETER_NAMES))})",
                        key=True,
                    )
                marked.append(replace(mapped, per_point=True))
            else:
                marked.append(replace(mapped, gathered=True))
        return tuple(marked)

    # Order ------------------------------------------------------------------------------------

    def _order(self, flows: list[ComposingFlow], upstream: dict[int, dict[int, Path]]) -> list[int]:
        """Topological order; ties keep the YAML order so the output reads like the spec."""
        sorter: graphlib.TopologicalSorter[int] = graphlib.TopologicalSorter()
        for index in range(len(flows)):
            sorter.add(index, *sorted(upstream[index]))
        try:
            sorter.prepare()
        except graphlib.CycleError as error:
            cycle: list[int] = error.args[1]
            names = " -> ".join(flows[i].step_name for i in cycle)
            closing_child, closing_parent = cycle[-1], cycle[-2]
            path = upstream[closing_child].get(closing_parent, ("composing_flows", closing_child))
            self.error(path, f"cycle: {names}")
            return list(range(len(flows)))
        order = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready())
            for index in ready:
                order.append(index)
                sorter.done(index)
        return order

    # Steps ------------------------------------------------------------------------------------

    def _step(
        self,
        index: int,
        flow: ComposingFlow,
        interface: FlowInterface | None,
        inputs: tuple[MappedInput, ...],
        upstream: dict[int, Path],
        order: list[int],
    ) -> Step:
        alias = flow.step_name
        flows = self.spec.composing_flows
        known = {p.name for p in interface.parameters} if interface else set()
        for param_name in flow.parameters:
            if interface is not None and param_name not in known:
                self.error(
                    ("composing_flows", index, "parameters", param_name),
                    f"flow {flow.name!r} has no parameter {param_name!r}{did_you_mean(param_name, known)}",
                    key=True,
                )
        check_scan(index, flow, interface, self.error)
        scan = scan_axes(alias, flow, interface, _variable)
        scanned = {axis.parameter: axis for axis in scan.axes} if scan else {}
        mapped_names = {m.parameter for m in inputs} | set(flow.mapped_parameters)
        composite = []
        arguments = []
        for parameter in interface.parameters if interface else ():
            if parameter.name in mapped_names:
                arguments.append((parameter.name, _variable(alias, parameter.name)))
                continue
            if parameter.name in scanned:
                axis = scanned[parameter.name]
                composite.append(
                    CompositeParameter(
                        name=axis.name,
                        variable=axis.variable,
                        step=alias,
                        child_parameter=parameter.name,
                        default=list(axis.values),
                        required=False,
                        overridden=True,
                        scanned=True,
                    )
                )
                continue  # the value comes from the point
            overridden = parameter.name in flow.parameters
            default = flow.parameters[parameter.name] if overridden else parameter.default
            if not overridden:
                try:
                    default = normalize(default)
                except ValueRejected as error:
                    self.error(
                        ("composing_flows", index, "name"),
                        f"the lock's default of {parameter.name!r} ({flow.lock_key}) is not accepted: {error}; "
                        "give this parameter a default under `parameters:`, or change the child flow and run `flowc lock`",
                    )
            variable = _variable(alias, parameter.name)
            composite.append(
                CompositeParameter(
                    name=f"{alias}-{parameter.name}",
                    variable=variable,
                    step=alias,
                    child_parameter=parameter.name,
                    default=default,
                    required=parameter.required and not overridden,
                    overridden=overridden,
                )
            )
            arguments.append((parameter.name, variable))
        position = self._position(order)
        depends_on = []
        for parent_index in upstream:
            parent_alias = flows[parent_index].step_name
            if not any(m.parent == parent_alias for m in inputs):
                depends_on.append(parent_index)
        return Step(
            alias=alias,
            flow_name=flow.name,
            project_name=flow.project_name,
            source=flow.source or (interface.source if interface else None),
            parameters=tuple(composite),
            inputs=inputs,
            depends_on=tuple(flows[i].step_name for i in sorted(depends_on, key=position.__getitem__)),
            upstream=tuple(flows[i].step_name for i in sorted(upstream, key=position.__getitem__)),
            arguments=tuple(arguments),
            labels=None if flow.labels is None else tuple(flow.labels),
            retries=flow.retries,
            retry_delay_s=duration_seconds(flow.retry_delay),
            timeout_s=None if flow.timeout is None else duration_seconds(flow.timeout),
            deployment=flow.deployment,
            scan=scan,
            source_digest=interface.source_digest if interface else None,
        )

    def _position(self, order: list[int]) -> dict[int, int]:
        """Rank of each step in the order; computed once (a 500-step plan asks 500 times)."""
        if self._positions is None or self._positions[0] is not order:
            self._positions = (order, {step: rank for rank, step in enumerate(order)})
        return self._positions[1]


def _variable(alias: str, parameter: str) -> str:
    return f"{alias}_{re.sub(r'[^A-Za-z0-9_]', '_', parameter)}"


def _placeholder(param_name: str, alias: str, parent: str, mapped: MappedParameter) -> MappedInput:
    """Stands in for an invalid mapping so later checks still run; the plan is never emitted."""
    return MappedInput(param_name, _variable(alias, param_name), parent, "", "", mapped.map_type, ())
