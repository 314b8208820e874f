"""The SQLite backend: one file per shard plus a catalog file, WAL mode, BEGIN IMMEDIATE writes."""

from .backend import SQLiteBackend
from .catalog import SQLiteCatalogStore, create_catalog_file
from .connection import Connection
from .shard import SQLiteShardStore, create_shard_file

__all__ = ["Connection", "SQLiteBackend", "SQLiteCatalogStore", "SQLiteShardStore", "create_catalog_file", "create_shard_file"]
