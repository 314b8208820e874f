"""File tests on paths users give, which never raise: a name too long to look up (ENAMETOOLONG)
or otherwise unusable is simply not a file or directory, and is reported when it is read."""

from __future__ import annotations

from pathlib import Path


def is_file(path: Path) -> bool:
    """Whether ``path`` is a regular file (False instead of OSError or ValueError)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def is_dir(path: Path) -> bool:
    """Whether ``path`` is a directory (False instead of OSError or ValueError)."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False
