"""Durations given on the command line."""

import pytest

from wfctl.durations import parse_duration
from wfctl.errors import InputError


@pytest.mark.parametrize("text, seconds", [
    ("30", 30), ("1.5", 1.5), ("90s", 90), ("15m", 900), ("2h", 7200), ("7d", 604800), ("1w", 604800),
    ("1h30m", 5400), ("250ms", 0.25), (" 2D ", 172800),
])
def test_parse(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "7days", "-5", "5x", "h", "1h 30m", "nan"])
def test_rejects(text):
    with pytest.raises(InputError, match="--older-than"):
        parse_duration(text, "--older-than")
