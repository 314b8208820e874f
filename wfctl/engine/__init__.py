"""The durable engine: the :class:`Engine`, shard :class:`Worker`\\ s and worker processes.

Runs live in the data directory's shards (:mod:`wfctl.store`); workers hold shard leases and
advance runs with the interpreter, journaling every step. An engine and the workers it starts
share a :class:`~wfctl.engine.runtime.Runtime` (stores, definitions, interpreter, clock).

:class:`Worker` and :func:`run_workers` are imported on first use: ``wfctl status`` and
``wfctl list`` need only :class:`Engine`, and the worker pulls in the interpreter (lark,
the expression compiler) and the definition model (pydantic).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .engine import Engine, StartResult
from .runtime import Runtime

if TYPE_CHECKING:
    from .processes import run_workers
    from .worker import Worker

__all__ = ["Engine", "Runtime", "StartResult", "Worker", "run_workers"]


def __getattr__(name: str) -> Any:
    if name == "Worker":
        from .worker import Worker

        return Worker
    if name == "run_workers":
        from .processes import run_workers

        return run_workers
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
