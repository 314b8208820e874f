"""Session roles: what part of wfctl a process is, named in every database session it opens.

A PostgreSQL session's ``application_name`` is ``wfctl <schema> <role>`` (``wfctl wfctl_shard_003
worker``, ``wfctl wfctl_catalog cli``), so that a sampler of ``pg_stat_activity`` can attribute
each session to a deployment, a shard and a role (:func:`parse_application_name`,
:func:`shard_of_schema`). The role is process-wide: ``cli`` by default, ``worker`` once a worker
serves shards, ``scheduler`` once the scheduler loop runs; the stress harness sets its own
(``client``, ``harness``). Sessions already open take a new role at their next transaction.
"""

from __future__ import annotations

import re

CLI = "cli"
WORKER = "worker"
SCHEDULER = "scheduler"

APPLICATION_PREFIX = "wfctl "
"""What every wfctl session's name starts with (a lease takeover ends only such sessions)."""
MAX_NAME_BYTES = 63  # PostgreSQL keeps NAMEDATALEN - 1 bytes of an application_name
_ROLE = re.compile(r"[a-z][a-z0-9_-]{0,19}")
_SHARD_SCHEMA = re.compile(r"(.+)_shard_(\d{3,})")

_role = CLI


def set_session_role(role: str) -> None:
    """Name this process's sessions with ``role`` (1-20 lowercase letters, digits, ``_`` or ``-``,
    starting with a letter); ValueError otherwise."""
    global _role
    if not (isinstance(role, str) and _ROLE.fullmatch(role)):
        raise ValueError(f"a session role is 1-20 lowercase letters, digits, _ or -, got {role!r}")
    _role = role


def session_role() -> str:
    """This process's session role (``cli`` unless :func:`set_session_role` was called)."""
    return _role


def application_name(schema: str, role: str | None = None) -> str:
    """``wfctl <schema> <role>`` (``role`` default: this process's), the schema cut short when the
    whole would pass :data:`MAX_NAME_BYTES` bytes, so the role is always there."""
    role = role or _role
    room = MAX_NAME_BYTES - len(APPLICATION_PREFIX) - len(role) - 1
    cut = schema.encode()[:room].decode(errors="ignore")
    return f"{APPLICATION_PREFIX}{cut} {role}"


def parse_application_name(name: str | None) -> tuple[str, str] | None:
    """``(schema, role)`` of a name :func:`application_name` made; None for any other name (another
    program's session, wfctl's listener ``wfctl listener``)."""
    if not name or not name.startswith(APPLICATION_PREFIX):
        return None
    schema, _, role = name[len(APPLICATION_PREFIX):].rpartition(" ")
    if not schema or " " in schema or not _ROLE.fullmatch(role):
        return None
    return schema, role


def shard_of_schema(schema: str) -> tuple[str, int] | None:
    """``(prefix, shard)`` of a shard schema name (``wfctl_shard_003`` -> ``("wfctl", 3)``); None
    for any other schema (the catalog ``wfctl_catalog``)."""
    match = _SHARD_SCHEMA.fullmatch(schema)
    return None if match is None else (match.group(1), int(match.group(2)))
