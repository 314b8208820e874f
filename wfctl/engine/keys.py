"""The engine's fixed secret key: ``$WFCTL_SECRET_KEY``, else ``secret.key`` in the data directory.

Secrets are stored encrypted in run states; every process that resumes a run must decrypt
them, so the key cannot be per process. The key file is created on first use (mode 0600),
published atomically (a hard link that fails when another process won the race).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Mapping

from ..errors import SecretError
from ..secrets import KEY_ENV, SecretBox

KEY_FILE = "secret.key"


def secret_box(data_dir: Path, env: Mapping[str, str] = os.environ) -> SecretBox:
    """The SecretBox for ``data_dir``: the key from ``$WFCTL_SECRET_KEY`` or the directory's key file."""
    if env.get(KEY_ENV):
        return SecretBox(env[KEY_ENV])
    path = Path(data_dir) / KEY_FILE
    if not path.exists():
        _create(path)
    try:
        key = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretError(f"cannot read the secret key {path}: {exc}") from None
    try:
        return SecretBox(key)
    except SecretError:
        raise SecretError(f"{path} does not hold a valid Fernet key (or set {KEY_ENV})") from None


def _create(path: Path) -> None:
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
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
