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


def format_seconds(seconds: float) -> str:
    """A duration for people: ``0.012`` -> "12 ms", ``1.234`` -> "1.2 s", ``125`` -> "2 min 5 s",
    ``1500`` -> "25 min", ``12000`` -> "3 h 20 min", ``200000`` -> "2 d 7 h"; negatives keep the sign."""
    if seconds < 0:
        return "-" + format_seconds(-seconds)
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 10:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
