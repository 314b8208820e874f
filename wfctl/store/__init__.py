"""Storage: the interface the engine uses (:mod:`.base`), the data directory, routing, backends.

No SQL lives outside this package; the engine talks to :class:`ShardStore` and
:class:`CatalogStore`, opened through a :class:`DataDir`, whose :class:`Backend` (SQLite,
PostgreSQL) creates and opens them.
"""

from .base import (CANCELED, COMPLETED, FAILED, FINISHED, PENDING, RUN_STATUSES, RUNNING, SCHEMA_VERSION,
                   UNFINISHED, CatalogStore, DefinitionVersion, JournalRecord, JournalRow, NewRun, RunRecord, RunTimes, ShardHealth, ShardProgress, ShardStats,
                   ShardStore, StepCommit)
from .backend import Backend, open_backend
from .datadir import DataDir, Settings, resolve_data_dir
from .errors import CorruptShardError, FencingError, PayloadTooLargeError, StoreBusyError, StoreError, UnreachableError
from .patience import impatient
from .roles import application_name, parse_application_name, session_role, set_session_role, shard_of_schema
from .routing import fnv1a_32, safe_shard_index, shard_for

__all__ = [
    "CANCELED", "COMPLETED", "FAILED", "FINISHED", "PENDING", "RUN_STATUSES", "RUNNING", "SCHEMA_VERSION",
    "UNFINISHED", "Backend", "CatalogStore", "CorruptShardError", "DataDir", "DefinitionVersion", "FencingError", "JournalRecord",
    "JournalRow", "NewRun", "PayloadTooLargeError", "RunRecord", "RunTimes", "Settings", "ShardHealth", "ShardProgress", "ShardStats", "ShardStore",
    "StepCommit", "StoreBusyError", "StoreError", "UnreachableError", "application_name", "fnv1a_32", "impatient", "open_backend",
    "parse_application_name", "resolve_data_dir", "safe_shard_index", "session_role", "set_session_role", "shard_for",
    "shard_of_schema",
]
