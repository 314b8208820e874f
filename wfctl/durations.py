"""Durations as users write them: ``90s``, ``15m``, ``2h``, ``7d``, ``1w``, ``1h30m``, or plain seconds."""

from __future__ import annotations

import math
import re

from .errors import InputError

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds in ``text``; a bad or negative duration raises InputError naming ``what``."""
    value = text.strip().lower()
    try:
        seconds = float(value)
    except ValueError:
        parts = _PART.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise InputError(f"{what}: '{text}' is not a duration (examples: 30s, 15m, 2h, 7d, 1h30m)") from None
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    return check_seconds(seconds, what, text)


def check_seconds(seconds: float, what: str = "duration", text: str | None = None) -> float:
    """``seconds`` if it is a finite number >= 0; else InputError naming ``what``."""
    shown = f"'{text}'" if text is not None else repr(seconds)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise InputError(f"{what}: expected a number of seconds, got {shown}")
    if not math.isfinite(seconds):
        raise InputError(f"{what}: {shown} is not a finite number of seconds")
    if seconds < 0:
        raise InputError(f"{what}: {shown} must not be negative")
    return float(seconds)
