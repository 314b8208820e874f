"""The durable engine: the :class:`Engine` client, shard :class:`Worker`\\ s and worker processes.

Runs live in the data directory's shard files (:mod:`wfctl.store`); workers hold shard
leases and advance runs with the interpreter, journaling every step.
"""

from .client import Engine, StartResult
from .processes import run_workers
from .worker import Worker

__all__ = ["Engine", "StartResult", "Worker", "run_workers"]
