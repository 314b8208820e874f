"""Interpreter factories for :class:`~wfctl.engine.Engine` and worker processes, and the
action policy for commands that validate without an engine.

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


def action_policy(data_dir: str | Path | None, allow_modules: Any = ()) -> Any:
    """The :class:`~wfctl.actions.ActionPolicy` of ``allow_modules``, ``$WFCTL_ALLOW_MODULES`` and,
    when ``data_dir`` (None: the default one) is a readable data directory, its ``allow_modules``
    setting. Nothing is created."""
    from ..actions.policy import ActionPolicy
    from ..errors import InputError
    from ..store import DataDir, resolve_data_dir

    path = resolve_data_dir(None if data_dir is None else str(data_dir))
    setting = None
    if (path / "wfctl.json").is_file():
        try:
            setting = DataDir.open(path, create=False).settings.allow_modules
        except InputError:
            pass  # not a usable data directory: no setting (fails closed)
    return ActionPolicy.resolve(allow_modules or (), setting=setting)
