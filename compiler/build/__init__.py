"""`flowc build`: generate, build and push each project's image, then register (prefect1) or
deploy (prefect3) its flow. `command.py` is the command; `images.py`, `wheel.py` and `register.py`
its parts; `common.py` what they share."""

from compiler.build.command import build_command, load_targets, summary
from compiler.build.common import INPUTS_LABEL, Progress, Tally, Target, registry_of
from compiler.build.images import build_context, build_images
from compiler.build.wheel import flowc_wheel

__all__ = [
    "INPUTS_LABEL",
    "Progress",
    "Tally",
    "Target",
    "build_command",
    "build_context",
    "build_images",
    "flowc_wheel",
    "load_targets",
    "registry_of",
    "summary",
]
