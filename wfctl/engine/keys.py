"""A deployment's secret key: ``$WFCTL_SECRET_KEY``, else ``secret.key`` in the project directory.

Secrets are stored encrypted in run states; every process (on every machine) that resumes a run
must decrypt them, so the key cannot be per process. The key's fingerprint (the first 16 hex
digits of its SHA-256) is recorded as the deployment's shared setting ``secret_key_fingerprint``
(see :meth:`wfctl.store.backend.Backend.shared_setting`: SQLite in ``wfctl.json``, PostgreSQL in
the catalog every machine reads) the first time it is used, so a missing or different key is
refused with one line naming the fingerprint instead of a new key being made (which could never
read the stored secrets). A key file is created (mode 0600, published atomically: a hard link
that fails when another process won the race) only for a deployment that has no recorded
fingerprint and no unfinished run; other machines of a deployment then need that key too
(``$WFCTL_SECRET_KEY``, or the file copied to their project directory).

A deployment made before fingerprints were recorded records the key it is next used with:
its own ``secret.key`` always; ``$WFCTL_SECRET_KEY`` only while no run is unfinished (with
unfinished runs it cannot tell the right key, so it is used without being recorded, and a
run whose secrets it cannot decrypt waits, see :mod:`wfctl.engine.worker`).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Mapping

from ..errors import InputError, SecretError
from ..secrets import KEY_ENV, SecretBox
from ..store import UNFINISHED, DataDir, StoreError
from ..store.backend import Backend

KEY_FILE = "secret.key"
FINGERPRINT = "secret_key_fingerprint"


def fingerprint(key: str) -> str:
    """A short, non-secret identifier of ``key``: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(key.strip().encode("utf-8")).hexdigest()[:16]


def secret_box(datadir: DataDir | str | Path, env: Mapping[str, str] = os.environ) -> SecretBox:
    """The SecretBox of ``datadir``'s deployment, checked against its recorded fingerprint.

    InputError (one line) when the key is missing, is not a valid key, or is not the key the
    deployment recorded; a key file is created only where no encrypted state can exist yet.
    """
    if not isinstance(datadir, DataDir):
        datadir = DataDir.open(datadir, create=False)
    return deployment_box(datadir.backend, env)


def deployment_box(backend: Backend, env: Mapping[str, str] = os.environ) -> SecretBox:
    """:func:`secret_box` for the deployment ``backend`` opens (its project directory holds the key
    file): also before a machine's project directory is made, to check the key of a deployment it joins."""
    path = backend.project / KEY_FILE
    recorded = backend.shared_setting(FINGERPRINT)
    from_env = bool(env.get(KEY_ENV))
    if from_env:
        key, where = env[KEY_ENV], f"${KEY_ENV}"
    elif os.path.lexists(path):
        key, where = _read(path), str(path)
    elif recorded is not None:
        raise InputError(f"the secret key of {backend.deployment()} (fingerprint {recorded}) is missing: set "
                         f"${KEY_ENV} to it or restore {path}; no new key is made, it could not read the "
                         "stored secrets")
    elif _has_unfinished_runs(backend):
        raise InputError(f"{backend.deployment()} has unfinished runs but no secret key: set ${KEY_ENV} or "
                         f"restore {path}; no new key is made, it could not read their secrets")
    else:
        _create(path)
        key, where = _read(path), str(path)
    try:
        box = SecretBox(key.strip())
    except SecretError:
        raise InputError(f"{where} does not hold a valid secret key (a Fernet key: 32 url-safe "
                         "base64-encoded bytes)") from None
    mine = fingerprint(key)
    if recorded is None and not (from_env and _has_unfinished_runs(backend)):
        try:
            recorded = backend.record_shared_setting(FINGERPRINT, mine)
        except OSError as exc:
            raise InputError(f"cannot record the secret key's fingerprint in {backend.deployment()}: "
                             f"{exc.strerror or exc}") from None
    if recorded is not None and recorded != mine:
        raise InputError(f"the secret key from {where} (fingerprint {mine}) is not the key of {backend.deployment()} "
                         f"(fingerprint {recorded}): use the deployment's own key")
    return box


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the secret key {path}: {getattr(exc, 'strerror', None) or exc}") from None


def _has_unfinished_runs(backend: Backend) -> bool:
    """Whether a run may need the key (a shard that cannot be read is set aside everywhere: not counted)."""
    for shard in range(backend.settings.shards):
        try:
            store = backend.open_shard(shard)
        except (StoreError, InputError):
            continue
        try:
            if store.count_runs(UNFINISHED):
                return True
        except StoreError:
            continue
        finally:
            store.close()
    return False


def _create(path: Path) -> None:
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # a machine joining a deployment: before its directory
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise InputError(f"cannot create the secret key {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(SecretBox.generate_key() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created it first: use theirs
    finally:
        os.unlink(tmp)
