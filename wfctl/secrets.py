"""Secrets: resolving them from the environment, encrypting them at rest, redacting them from output.

A definition declares ``config.secrets: {NAME: {envVar: VAR}}``; :func:`resolve_secrets`
reads the values, :class:`SecretBox` encrypts them (Fernet) for storage in the run state, and
:func:`redact` removes their plaintext from anything wfctl shows or stores.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from typing import Any, Iterable, Mapping

from cryptography.fernet import Fernet, InvalidToken

from .errors import SecretError

KEY_ENV = "WFCTL_SECRET_KEY"
MASK = "***"
#: Secret values shorter than this are not redacted: they would match ordinary text everywhere.
MIN_REDACT_LENGTH = 4

_ephemeral_key: bytes | None = None
_ephemeral_lock = threading.Lock()


def resolve_secrets(spec: Mapping[str, Mapping], env: Mapping[str, str]) -> dict[str, str]:
    """Values for ``{NAME: {envVar: VAR}}`` read from ``env``; SecretError for a missing one, or
    for ``$WFCTL_SECRET_KEY`` (the key that decrypts every stored secret is never handed to a run)."""
    values: dict[str, str] = {}
    for name, entry in spec.items():
        var = entry.get("envVar") if isinstance(entry, Mapping) else None
        if not isinstance(var, str) or not var:
            raise SecretError(f"secret '{name}': expected {{envVar: NAME}}")
        if var == KEY_ENV:
            raise SecretError(f"secret '{name}': {KEY_ENV} is wfctl's own secret key; a definition cannot read it")
        if var not in env:
            raise SecretError(f"secret '{name}': environment variable {var} is not set")
        values[name] = env[var]
    return values


def _process_key() -> bytes:
    global _ephemeral_key
    with _ephemeral_lock:
        if _ephemeral_key is None:
            _ephemeral_key = Fernet.generate_key()
        return _ephemeral_key


class SecretBox:
    """Fernet encryption of secret values.

    The key is ``key``, else ``$WFCTL_SECRET_KEY``, else a key generated once per process
    (``ephemeral`` is then True): values encrypted with it cannot be read by another process,
    so a durable engine must configure a persistent key.
    """

    def __init__(self, key: bytes | str | None = None):
        source = "the given key"
        if key is None and os.environ.get(KEY_ENV):
            key, source = os.environ[KEY_ENV], KEY_ENV
        self.ephemeral = key is None
        if key is None:
            key = _process_key()
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise SecretError(f"invalid secret key ({source}): expected a Fernet key "
                              "(32 url-safe base64-encoded bytes; see SecretBox.generate_key)") from None

    @staticmethod
    def generate_key() -> str:
        """A new random Fernet key (text, suitable for ``WFCTL_SECRET_KEY``)."""
        return Fernet.generate_key().decode("ascii")

    def encrypt(self, value: str) -> str:
        """The token for ``value``."""
        if not isinstance(value, str):
            raise SecretError(f"cannot encrypt a {type(value).__name__}: secret values are strings")
        return self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The value of ``token``; SecretError when it is invalid or was made with another key."""
        try:
            return self._fernet.decrypt(token.encode("ascii") if isinstance(token, str) else token).decode("utf-8")
        except (InvalidToken, TypeError, ValueError, AttributeError):
            raise SecretError(f"cannot decrypt a secret: invalid token or wrong key (check {KEY_ENV})") from None

    def encrypt_map(self, values: Mapping[str, str]) -> dict[str, str]:
        """``{name: token}`` for ``{name: value}``."""
        return {name: self.encrypt(value) for name, value in values.items()}

    def decrypt_map(self, tokens: Mapping[str, str]) -> dict[str, str]:
        """``{name: value}`` for ``{name: token}``."""
        return {name: self.decrypt(token) for name, token in tokens.items()}


@functools.lru_cache(maxsize=256)
def _pattern(values: frozenset[str]) -> re.Pattern[str]:
    # Longest first, so a secret that contains another is masked whole.
    return re.compile("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)))


def redact(value: Any, secret_values: Iterable[str]) -> Any:
    """A copy of the JSON value ``value`` with every secret replaced by ``***``.

    Applies to strings and dict keys, recursively; numbers and booleans are left alone.
    Secret values shorter than :data:`MIN_REDACT_LENGTH` (4) characters are ignored: masking
    them would mangle ordinary text without hiding anything worth hiding. When no secret
    applies, ``value`` itself is returned.
    """
    secrets = frozenset(s for s in secret_values if isinstance(s, str) and len(s) >= MIN_REDACT_LENGTH)
    if not secrets:
        return value
    return _redact(value, _pattern(secrets))


def _redact(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(MASK, value)
    if isinstance(value, Mapping):
        return {(pattern.sub(MASK, k) if isinstance(k, str) else k): _redact(v, pattern) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(item, pattern) for item in value]
    return value
