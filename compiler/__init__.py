"""flowc: compile LUME flow-of-flows specs into ordinary Prefect 1 projects."""

from __future__ import annotations

__version__ = "0.1.0"
