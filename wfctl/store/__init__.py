"""Storage: the interface the engine uses (:mod:`.base`), the data directory, routing, backends.

No SQL lives outside this package; the engine talks to :class:`ShardStore` and
:class:`CatalogStore`, opened through a :class:`DataDir`, whose :class:`Backend` (SQLite,
PostgreSQL) creates and opens them.
"""

from .base import (CANCELED, COMPLETED, FAILED, FINISHED, PENDING, RUN_STATUSES, RUNNING, SCHEMA_VERSION,
                   UNFINISHED, CatalogStore, DefinitionVersion, JournalRecord, JournalRow, NewRun, RunRecord, RunTimes, ShardProgress, ShardStats,
                   ShardStore, StepCommit)
from .backend import Backend, open_backend
from .datadir import DataDir, Settings, resolve_data_dir
from .errors import CorruptShardError, FencingError, PayloadTooLargeError, StoreBusyError, StoreError, UnreachableError
from .patience import impatient
from .routing import fnv1a_32, safe_shard_index, shard_for

__all__ = [
    "CANCELED", "COMPLETED", "FAILED", "FINISHED", "PENDING", "RUN_STATUSES", "RUNNING", "SCHEMA_VERSION",
    "UNFINISHED", "Backend", "CatalogStore", "CorruptShardError", "DataDir", "DefinitionVersion", "FencingError", "JournalRecord",
    "JournalRow", "NewRun", "PayloadTooLargeError", "RunRecord", "RunTimes", "Settings", "ShardProgress", "ShardStats", "ShardStore",
    "StepCommit", "StoreBusyError", "StoreError", "UnreachableError", "fnv1a_32", "impatient", "open_backend", "resolve_data_dir", "safe_shard_index",
    "shard_for",
]
