"""Rendering helpers shared by the commands: JSON to stdout, Rich consoles."""

from __future__ import annotations

import json
import sys
from typing import Any


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON to stdout."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def console(stderr: bool = False):
    """A Rich console (imported lazily)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)
