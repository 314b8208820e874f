"""Built-in actions: ``set_variables`` (tale's one local action), ``log``, ``sleep`` and ``fail``."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from ..errors import ActionError, ExpressionError
from .registry import ActionContext, ActionResult, one_line

LOG_LEVELS = ("debug", "info", "warning", "error")


def set_variables(params: dict, ctx: ActionContext) -> ActionResult:
    """tale's ``set_variables``: ``parameters.variables: [{name, value, secure?}]``.

    The interpreter passes ``parameters.variables`` UNRENDERED (the spec's ``raw_params``);
    this action renders each ``value`` in order with ``wfctl.expressions.render_value``
    against ``ctx.variables`` updated with the entries set so far, so a later entry sees an
    earlier one as ``variables.<name>`` (secure ones as ``secrets.<name>``). As in tale, a
    value that is a single tag resolving to undefined (or a missing ``value``) is stored as
    null; an unresolved tag inside a longer string still fails the step.

    Returns ``{variables: {name: value}}``. ``secure: true`` entries are not in it: their
    values (strings) go to ``ActionResult.secrets`` for the engine to store encrypted; a
    secure entry that renders to null or ``''`` is skipped, as tale does.
    """
    entries = params.get("variables")
    if not isinstance(entries, list):
        raise ActionError("set_variables: parameters.variables must be a list of {name, value}")
    working = dict(ctx.variables)
    plain = dict(working.get("variables") or {})
    secret_ns = dict(working.get("secrets") or {})
    working["variables"], working["secrets"] = plain, secret_ns
    values: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise ActionError(f"set_variables: variables[{index}] must be an object with a non-empty 'name'")
        name = entry["name"]
        value = _render(entry.get("value"), working, name)
        if entry.get("secure"):
            if value is None or value == "":
                continue
            if not isinstance(value, str):
                raise ActionError(f"set_variables: secure variable '{name}' must be a string, got {_js_type(value)}")
            secrets[name] = secret_ns[name] = value
        else:
            values[name] = plain[name] = value
    return ActionResult({"variables": values}, secrets=secrets or None)


def _render(value: Any, context: dict, name: str) -> Any:
    from ..expressions import render_value, to_json_value

    try:
        return to_json_value(render_value(value, context, allow_undefined=True))
    except ExpressionError as exc:
        raise ActionError(f"set_variables '{name}': {one_line(str(exc))}") from exc


def _js_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "object"


def log(params: dict, ctx: ActionContext) -> dict:
    """Write ``message`` at ``level`` (debug/info/warning/error, default info) to ``ctx.log``.

    The line passed to ``ctx.log`` is ``[level] message``. Returns ``{logged: message}``.
    """
    message = params.get("message", "")
    if not isinstance(message, str):
        from ..expressions import to_js_string

        message = to_js_string(message)
    level = params.get("level", "info")
    if level not in LOG_LEVELS:
        raise ActionError(f"log: level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    ctx.log(f"[{level}] {message}")
    return {"logged": message}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def iso_utc(epoch: float) -> str:
    """``epoch`` seconds as an ISO-8601 UTC string with milliseconds, like JS ``toISOString()``."""
    stamp = datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _parse_until(value: Any) -> float:
    number = _number(value)
    if number is not None:
        return number / 1000.0 if abs(number) >= 1e11 else number  # as tale: below 1e11 is seconds
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            return moment.timestamp()
    raise ActionError(f"sleep: until must be an ISO-8601 date or epoch seconds, got {value!r}")


def sleep(params: dict, ctx: ActionContext) -> ActionResult:
    """Hold the run until ``ctx.now() + seconds`` or until ``until`` (ISO-8601, or epoch s/ms).

    Never blocks: returns ``ActionResult({until: iso}, wake_at=epoch)`` and the engine
    delays the next step. A naive ``until`` is taken as UTC; a moment in the past wakes at once.
    """
    has_seconds, has_until = params.get("seconds") is not None, params.get("until") is not None
    if has_seconds == has_until:
        raise ActionError("sleep: give exactly one of 'seconds' or 'until'")
    if has_seconds:
        seconds = _number(params["seconds"])
        if seconds is None or seconds < 0:
            raise ActionError(f"sleep: seconds must be a non-negative number, got {params['seconds']!r}")
        wake_at = ctx.now() + seconds
    else:
        wake_at = _parse_until(params["until"])
    return ActionResult({"until": iso_utc(wake_at)}, wake_at=wake_at)


def fail(params: dict, ctx: ActionContext) -> dict:
    """Fail with ``message``; with ``attempts: n``, fail only while ``ctx.attempt <= n`` (retry tests).

    Returns ``{attempt: n}`` once it succeeds.
    """
    message = params.get("message") or "fail action"
    attempts = params.get("attempts")
    if attempts is not None and (isinstance(attempts, bool) or not isinstance(attempts, int)):
        raise ActionError(f"fail: attempts must be an integer, got {attempts!r}")
    if attempts is None or ctx.attempt <= attempts:
        raise ActionError(one_line(str(message)))
    return {"attempt": ctx.attempt}
