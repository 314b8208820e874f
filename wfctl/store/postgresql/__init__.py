"""The PostgreSQL backend: a catalog schema plus one schema per shard, on one or several servers (psycopg 3)."""

from .backend import PostgresBackend
from .catalog import PostgresCatalogStore
from .shard import PostgresShardStore

__all__ = ["PostgresBackend", "PostgresCatalogStore", "PostgresShardStore"]
