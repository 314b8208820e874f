"""LLM providers: an OpenAI-compatible chat-completions client and a deterministic offline one."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

import httpx

from ..errors import LLMError

DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: Used with the default (OpenAI) base URL when neither the environment nor the step names a model.
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


@runtime_checkable
class LLMProvider(Protocol):
    """Something that answers a chat: ``messages`` are ``{role, content}`` dicts.

    ``schema`` (the step's ``outputSchema``) is a hint for JSON mode; providers may ignore it.
    Errors are raised as :class:`~wfctl.errors.LLMError` with a one-line message.
    """

    def complete(self, messages: list[dict], *, model: str | None = None, json_mode: bool = False,
                 timeout: float | None = None, schema: Mapping[str, Any] | None = None) -> str: ...


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class OpenAIProvider:
    """POSTs to ``{base_url}/chat/completions`` (OpenAI and compatible servers).

    ``model`` is used for every call when set; otherwise the step's ``model``. ``api_key`` may
    be None for servers without authentication. Error messages never contain the key.
    """

    def __init__(self, base_url: str, api_key: str | None, model: str | None, timeout: float = 60):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self._api_key = api_key
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers)

    def __repr__(self) -> str:
        return f"OpenAIProvider(base_url={self.base_url!r}, model={self.model!r})"

    def _fail(self, message: str) -> LLMError:
        if self._api_key:
            message = message.replace(self._api_key, "***")
        return LLMError(_one_line(message, 400))

    def complete(self, messages: list[dict], *, model: str | None = None, json_mode: bool = False,
                 timeout: float | None = None, schema: Mapping[str, Any] | None = None) -> str:
        """The assistant's reply text. ``schema`` is not sent (JSON mode uses ``json_object``)."""
        chosen = self.model or model
        if not chosen:
            raise LLMError("no LLM model: set WFCTL_LLM_MODEL or the step's model")
        body: dict[str, Any] = {"model": chosen, "messages": messages}
        if json_mode:
            body["response_format"] = {"type": "json_object"}
        url = f"{self.base_url}/chat/completions"
        try:
            response = self._client.post(url, json=body, timeout=timeout or self.timeout)
        except httpx.TimeoutException:
            raise self._fail(f"LLM request to {url} timed out after {timeout or self.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise self._fail(f"LLM request to {url} failed: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 400:
            raise self._fail(f"LLM request to {url} failed: HTTP {response.status_code}: {_error_detail(response)}")
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, LookupError, TypeError):
            raise self._fail(f"LLM response from {url} is malformed: {response.text[:200]}") from None
        if not isinstance(content, str):
            raise self._fail(f"LLM response from {url} has no text content")
        return content


def _error_detail(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
        message = error.get("message") if isinstance(error, dict) else error
        if isinstance(message, str) and message:
            return message
    except (ValueError, AttributeError):
        pass
    return response.text[:200] or response.reason_phrase


class OfflineProvider:
    """A deterministic stand-in: the answer is derived from a hash of the request.

    Text mode: ``offline answer <8 hex>: <first 60 chars of the user prompt>``. JSON mode: a
    minimal object valid under ``schema`` when given (see :func:`sample_from_schema`), else
    ``{"answer": <text answer>}``. ``latency_ms`` simulates a slow model (for load tests).
    """

    def __init__(self, latency_ms: float = 0, sleep: Callable[[float], None] = time.sleep):
        self.latency_ms = latency_ms
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"OfflineProvider(latency_ms={self.latency_ms!r})"

    def complete(self, messages: list[dict], *, model: str | None = None, json_mode: bool = False,
                 timeout: float | None = None, schema: Mapping[str, Any] | None = None) -> str:
        """The deterministic answer for ``messages`` (see the class docstring)."""
        if self.latency_ms > 0:
            self._sleep(self.latency_ms / 1000.0)
        digest = hashlib.sha256(
            json.dumps([messages, model, json_mode, schema], sort_keys=True, default=str).encode("utf-8")
        ).hexdigest()[:8]
        prompt = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), None)
        if prompt is None:
            prompt = messages[-1].get("content", "") if messages else ""
        text = f"offline answer {digest}: {' '.join(str(prompt).split())[:60]}"
        if not json_mode:
            return text
        if schema:
            return json.dumps(sample_from_schema(schema, digest), ensure_ascii=False)
        return json.dumps({"answer": text}, ensure_ascii=False)


_FORMATS = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "00:00:00Z",
    "email": "offline@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def sample_from_schema(schema: Any, seed: str = "0") -> Any:
    """A small value valid under a JSON schema (subset: type, enum, const, properties,
    items/minItems, min/max bounds, minLength/maxLength, format, anyOf/oneOf/allOf).

    Objects get every declared property; arrays get ``minItems`` elements; strings are
    ``offline-<seed>`` fitted to the length bounds. Unsupported keywords (``pattern``,
    ``$ref``) are not honoured.
    """
    if not isinstance(schema, Mapping):
        return None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return sample_from_schema(schema[key][0], seed)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        properties = schema.get("properties") if isinstance(schema.get("properties"), Mapping) else {}
        return {name: sample_from_schema(sub, seed) for name, sub in properties.items()}
    if kind == "array":
        count = schema.get("minItems", 0)
        return [sample_from_schema(schema.get("items", {}), seed) for _ in range(count if isinstance(count, int) else 0)]
    if kind in ("number", "integer"):
        return _sample_number(schema, kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if schema.get("format") in _FORMATS:
        return _FORMATS[schema["format"]]
    text = f"offline-{seed}"
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if isinstance(low, int) and len(text) < low:
        text += "x" * (low - len(text))
    if isinstance(high, int) and len(text) > high:
        text = text[:high]
    return text


def _sample_number(schema: Mapping, integer: bool) -> int | float:
    """The first of 0, the bounds, bound +/- 1 and the midpoint that satisfies every bound."""

    def bound(name: str) -> float | None:
        value = schema.get(name)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    low, high, ex_low, ex_high = bound("minimum"), bound("maximum"), bound("exclusiveMinimum"), bound("exclusiveMaximum")
    lower = max((b for b in (low, ex_low) if b is not None), default=None)
    upper = min((b for b in (high, ex_high) if b is not None), default=None)

    def fits(v: float) -> bool:
        return ((low is None or v >= low) and (high is None or v <= high)
                and (ex_low is None or v > ex_low) and (ex_high is None or v < ex_high))

    candidates: list[float] = [0]
    if lower is not None:
        candidates += [lower, lower + 1]
    if upper is not None:
        candidates += [upper, upper - 1]
    if lower is not None and upper is not None:
        candidates.append((lower + upper) / 2)
    for candidate in candidates:
        for value in ((math.ceil(candidate), math.floor(candidate)) if integer else (candidate,)):
            if fits(value):
                return int(value) if float(value).is_integer() else value
    return 0


def provider_from_env(env: Mapping[str, str] | None = None) -> LLMProvider:
    """The provider the environment asks for.

    ``WFCTL_LLM_BASE_URL`` / ``WFCTL_LLM_API_KEY`` / ``WFCTL_LLM_MODEL`` (falling back to
    ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` / ``OPENAI_MODEL``) select :class:`OpenAIProvider`;
    with only a key, the base URL is OpenAI's. With none set: :class:`OfflineProvider` with
    ``WFCTL_LLM_OFFLINE_LATENCY_MS`` (default 0).
    """
    env = os.environ if env is None else env

    def pick(*names: str) -> str | None:
        return next((env[n] for n in names if env.get(n)), None)

    base_url = pick("WFCTL_LLM_BASE_URL", "OPENAI_BASE_URL")
    api_key = pick("WFCTL_LLM_API_KEY", "OPENAI_API_KEY")
    model = pick("WFCTL_LLM_MODEL", "OPENAI_MODEL")
    if base_url or api_key:
        if not base_url:
            base_url, model = DEFAULT_BASE_URL, model or DEFAULT_OPENAI_MODEL
        return OpenAIProvider(base_url, api_key, model)
    latency = env.get("WFCTL_LLM_OFFLINE_LATENCY_MS", "0") or "0"
    try:
        latency_ms = float(latency)
    except ValueError:
        raise LLMError(f"WFCTL_LLM_OFFLINE_LATENCY_MS must be a number of milliseconds, got {latency!r}") from None
    if latency_ms < 0:
        raise LLMError(f"WFCTL_LLM_OFFLINE_LATENCY_MS must not be negative, got {latency!r}")
    return OfflineProvider(latency_ms=latency_ms)
