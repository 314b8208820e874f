"""The durable engine: the :class:`Engine` client, shard :class:`Worker`\\ s and worker processes.

Runs live in the data directory's shard files (:mod:`wfctl.store`); workers hold shard
leases and advance runs with the interpreter, journaling every step.

:class:`Worker` and :func:`run_workers` are imported on first use: ``wfctl status`` and
``wfctl list`` need only :class:`Engine`, and the worker pulls in the interpreter (lark,
the expression compiler) and the definition model (pydantic).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .client import Engine, StartResult

if TYPE_CHECKING:
    from .processes import run_workers
    from .worker import Worker

__all__ = ["Engine", "StartResult", "Worker", "run_workers"]


def __getattr__(name: str) -> Any:
    if name == "Worker":
        from .worker import Worker

        return Worker
    if name == "run_workers":
        from .processes import run_workers

        return run_workers
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
