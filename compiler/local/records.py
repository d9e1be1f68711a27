"""Run records: what each `flowc run` leaves in `.flowc/runs/<run-id>/record.json` for `--resume`.

A record lists the composite's child runs, each with its run key (compiler.keys), its step and
scan point, its state, its report file (the child's results and where they are stored), and
the runs upstream of it whose results it was started from. `load_index` reads every record under
`.flowc/runs/` and keeps, per run key, the latest successful run whose report is still there; a
run that reused another is recorded as that run (same ids, same report), so resuming a resumed
run reuses the original. Standard library only: `--resume` reads records before Prefect loads.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compiler.keys import canonical

if TYPE_CHECKING:
    from compiler.plan import Step

RECORD_FILE = "record.json"
RECORD_VERSION = 1


@dataclass(frozen=True)
class ChildRecord:
    """One successful child run as a record keeps it."""

    key: str
    step: str
    flow: str  # project/flow
    version: str | None  # the child's source digest in its run key
    composite_run_id: str  # the `flowc run` it ran in (its directory under .flowc/runs/)
    child_run_id: str
    started_at: str | None
    report_file: str  # relative to the project root
    fixed: str  # digest of the parameters that were not mapped from other steps
    point: dict[str, Any] | None = None
    attempt: int = 0
    upstream: dict[str, list[str]] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)  # as summaries show them
    labels: list[str] | None = None

    def report(self, root: Path) -> dict[str, Any] | None:
        """The child's own report (state, results and their locations), if it is still there."""
        try:
            report = json.loads((root / self.report_file).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return report if isinstance(report, dict) else None

    @property
    def started_clock(self) -> str:
        """`14:02` (local time), with the date when it was not today."""
        if not self.started_at:
            return "an earlier run"
        try:
            when = datetime.fromisoformat(self.started_at).astimezone()
        except ValueError:
            return self.started_at
        today = datetime.now(timezone.utc).astimezone().date()
        return when.strftime("%H:%M") if when.date() == today else when.strftime("%Y-%m-%d %H:%M")

    def reused_json(self) -> dict[str, Any]:
        """What `--json` says of the run a child reused."""
        return {"run_id": self.composite_run_id, "child_run_id": self.child_run_id, "started_at": self.started_at}

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "step": self.step,
            "flow": self.flow,
            "version": self.version,
            "state": "Success",
            "composite_run_id": self.composite_run_id,
            "child_run_id": self.child_run_id,
            "started_at": self.started_at,
            "report_file": self.report_file,
            "fixed": self.fixed,
            "point": self.point,
            "attempt": self.attempt,
            "upstream": self.upstream,
            "parameters": self.parameters,
            "labels": self.labels,
        }


@dataclass
class RecordIndex:
    """Every successful child run recorded under `.flowc/runs/`: by run key, and by step."""

    by_key: dict[str, ChildRecord] = field(default_factory=dict)
    by_step: dict[str, list[ChildRecord]] = field(default_factory=dict)  # latest first
    runs: int = 0  # record files read

    def __len__(self) -> int:
        return len(self.by_key)

    def find(self, step: str, key: str) -> ChildRecord | None:
        """The latest successful run under `key`, of this step when it has one (equal inputs give
        equal keys, so another step of the same child may hold the key too)."""
        own = next((r for r in self.by_step.get(step, ()) if r.key == key), None)
        return own if own is not None else self.by_key.get(key)


def fixed_digest(step: Step, parameters: Mapping[str, Any]) -> str:
    """A digest of the child parameters that are not mapped from another step."""
    mapped = {m.parameter for m in step.inputs}
    fixed = {name: value for name, value in parameters.items() if name not in mapped}
    encoded = json.dumps(canonical(fixed), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return "sha256:" + hashlib.sha256(encoded.encode("ascii")).hexdigest()


def write_record(run_dir: Path, *, run_id: str, spec: str, flow: str, started_at: str, children: list[dict[str, Any]]) -> Path:
    """Write the run's record atomically (a reader never sees half of one)."""
    document = {
        "record_version": RECORD_VERSION,
        "run_id": run_id,
        "spec": spec,
        "flow": flow,
        "started_at": started_at,
        "children": children,
    }
    path = run_dir / RECORD_FILE
    partial = run_dir / f".{RECORD_FILE}.partial"
    partial.write_text(json.dumps(document, indent=1, sort_keys=True, default=repr) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


def load_index(runs_dir: Path) -> RecordIndex:
    """Every record under `runs_dir`; unreadable records and runs that did not succeed are skipped."""
    index = RecordIndex()
    try:
        record_files = sorted(runs_dir.glob(f"*/{RECORD_FILE}"))
    except OSError:
        return index
    found: list[ChildRecord] = []
    for path in record_files:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(document, dict) or document.get("record_version") != RECORD_VERSION:
            continue
        index.runs += 1
        for entry in document.get("children") or []:
            record = _child_record(entry)
            if record is not None:
                found.append(record)
    found.sort(key=lambda r: (r.started_at or "", r.child_run_id), reverse=True)
    seen: set[tuple[str, str, str]] = set()
    for record in found:
        same = (record.step, record.child_run_id, json.dumps(record.upstream, sort_keys=True))
        if same in seen:
            continue  # the same run, recorded again by a run that reused it
        seen.add(same)
        index.by_key.setdefault(record.key, record)
        index.by_step.setdefault(record.step, []).append(record)
    return index


def _child_record(entry: Any) -> ChildRecord | None:
    if not isinstance(entry, dict) or entry.get("state") != "Success":
        return None
    try:
        return ChildRecord(
            key=str(entry["key"]),
            step=str(entry["step"]),
            flow=str(entry["flow"]),
            version=entry.get("version"),
            composite_run_id=str(entry["composite_run_id"]),
            child_run_id=str(entry["child_run_id"]),
            started_at=entry.get("started_at"),
            report_file=str(entry["report_file"]),
            fixed=str(entry["fixed"]),
            point=entry.get("point"),
            attempt=int(entry.get("attempt") or 0),
            upstream={str(k): [str(i) for i in v] for k, v in (entry.get("upstream") or {}).items()},
            parameters=dict(entry.get("parameters") or {}),
            labels=entry.get("labels"),
        )
    except (KeyError, TypeError, ValueError):
        return None
