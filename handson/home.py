"""The kit's own folder on this machine, outside the git repository: ``$HANDSON_HOME``, or
``~/.handson`` when it is not set. The sandbox keeps its state there, and the learner's
copies of the app live there."""

from __future__ import annotations

import os
from pathlib import Path


def kit_home() -> Path:
    """``$HANDSON_HOME`` (read now, not at import), else ``~/.handson``."""
    return Path(os.environ.get("HANDSON_HOME") or Path.home() / ".handson").expanduser()
