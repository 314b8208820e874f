"""The ``http_request`` action (httpx, one shared connection pool per process)."""

from __future__ import annotations

import json
import math
import threading
from typing import Any, Mapping

import httpx

from ..errors import ActionError
from .registry import ActionContext, one_line

DEFAULT_TIMEOUT = 30.0

_client: httpx.Client | None = None
_client_lock = threading.Lock()


def _shared_client() -> httpx.Client:
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                _client = httpx.Client(follow_redirects=True)
    return _client


def _text(value: Any) -> str:
    """A header or query value as text (JS ``String()`` for numbers and booleans)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _string_map(params: Mapping, key: str) -> dict[str, Any]:
    value = params.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ActionError(f"http_request: {key} must be an object")
    return dict(value)


def http_request(params: dict, ctx: ActionContext) -> dict:
    """Send an HTTP request and return ``{status, headers, body, json}``.

    Parameters: ``url`` (required), ``method`` (default GET), ``headers``, ``query`` (values may
    be lists; merged with the url's own), ``json`` (sent as JSON) or ``body`` (a string is sent as is, anything else as
    JSON), ``timeout`` (seconds, default 30), ``raiseForStatus`` (default true: a 4xx/5xx
    status fails the step). Redirects are followed. ``headers`` in the result has lower-case
    names; ``json`` is the parsed body, or null when the body is not JSON.
    """
    url = params.get("url")
    if not isinstance(url, str) or not url:
        raise ActionError("http_request: url is required")
    method = params.get("method") or "GET"
    if not isinstance(method, str):
        raise ActionError(f"http_request: method must be a string, got {method!r}")
    method = method.upper()
    headers = {str(k): _text(v) for k, v in _string_map(params, "headers").items()}
    query = {str(k): [_text(i) for i in v] if isinstance(v, list) else _text(v)
             for k, v in _string_map(params, "query").items()}
    timeout = params.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
        raise ActionError(f"http_request: timeout must be a positive number of seconds, got {timeout!r}")
    if params.get("json") is not None and params.get("body") is not None:
        raise ActionError("http_request: give either json or body, not both")
    content: str | None = None
    json_body: Any = params.get("json")
    body = params.get("body")
    if isinstance(body, str):
        content = body
    elif body is not None:
        json_body = body
    where = f"{method} {url}"
    try:
        target = httpx.URL(url).copy_merge_params(query) if query else url
        response = _shared_client().request(
            method, target, headers=headers, content=content, json=json_body, timeout=timeout)
    except httpx.TimeoutException:
        raise ActionError(f"http_request {where}: timed out after {timeout:g}s") from None
    except httpx.InvalidURL as exc:
        raise ActionError(f"http_request {where}: invalid url: {one_line(str(exc))}") from None
    except (httpx.HTTPError, httpx.StreamError) as exc:
        raise ActionError(f"http_request {where}: {type(exc).__name__}: {one_line(str(exc))}") from None
    text = response.text
    if response.status_code >= 400 and params.get("raiseForStatus", True) is not False:
        snippet = one_line(text, 200)
        raise ActionError(f"http_request {where}: HTTP {response.status_code} {response.reason_phrase}"
                          + (f": {snippet}" if snippet else ""))
    try:
        parsed = json.loads(text) if text.strip() else None
    except ValueError:
        parsed = None
    return {
        "status": response.status_code,
        "headers": {name: ", ".join(response.headers.get_list(name)) for name in response.headers.keys()},
        "body": text,
        "json": parsed,
    }
