"""Error types wfctl reports to users.

Every error wfctl raises on purpose derives from :class:`WfctlError`; its ``str()`` is
one line that says what is wrong and where. The CLI prints that line and exits with
the error's ``exit_code``; anything else escaping is a bug.
"""

from __future__ import annotations


class WfctlError(Exception):
    """Base of every error wfctl reports to users; ``str()`` is a single line."""

    exit_code = 2


class InputError(WfctlError):
    """Bad user input: malformed JSON, unreadable file, unknown id, bad option value."""


class DefinitionError(WfctlError):
    """A workflow definition cannot be loaded or is invalid."""


class ExpressionError(WfctlError):
    """A JEXL expression cannot be parsed or evaluated."""


class TemplateError(ExpressionError):
    """A ``{{ }}`` template cannot be rendered (for example, a tag is unresolved)."""


class StepError(WfctlError):
    """A step failed while running. The engine may retry it under the retry policy."""

    exit_code = 1


class ActionError(StepError):
    """An action step failed (unknown action type, missing stub, action raised)."""


class LLMError(StepError):
    """An LLM step failed (provider error, bad JSON output, schema mismatch)."""


class SecretError(StepError):
    """A secret cannot be resolved or decrypted."""
