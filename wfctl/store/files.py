"""Looking at a data directory's files: a path that cannot be looked at is a one-line InputError."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError


def exists(path: Path, *, file: bool = False) -> bool:
    """Whether ``path`` exists (``file``: is a regular file); InputError when it cannot be looked at."""
    try:
        return path.is_file() if file else path.exists()
    except OSError as exc:
        raise InputError(f"cannot access {path}: {exc.strerror or exc}") from None
