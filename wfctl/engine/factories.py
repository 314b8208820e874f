"""Interpreter factories for :class:`~wfctl.engine.Engine` and worker processes.

A factory is ``factory(secret_box) -> Interpreter``; the ones made here are picklable (a
module-level function under :func:`functools.partial`), so ``run_workers`` can send them to
spawned worker processes.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable


def with_stubs(stubs: str | Path) -> Callable[[Any], Any]:
    """A factory whose interpreters answer tale platform actions from the stubs file ``stubs``.

    The file is loaded here once, so a malformed file is reported before any run starts.
    """
    from ..actions import StubSet

    StubSet.load(stubs)
    return functools.partial(_build, str(stubs))


def _build(stubs: str, secret_box: Any) -> Any:
    from ..actions import StubSet
    from ..interpreter import Interpreter

    return Interpreter(secret_box=secret_box, stubs=StubSet.load(stubs))
