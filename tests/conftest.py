"""Shared fixtures: a fake clock and a deterministic interpreter."""

from __future__ import annotations

import random

import pytest

from helpers import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_interpreter(clock):
    """Build an Interpreter with a fake clock, a seeded rng and no real environment."""
    from wfctl.interpreter import Interpreter

    def build(**kwargs):
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("rng", random.Random(7))
        kwargs.setdefault("env", {})
        return Interpreter(**kwargs)

    return build
