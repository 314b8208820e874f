"""The llm step: build the chat from the (rendered) step config, call the provider, check the answer."""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from ..errors import LLMError
from .providers import LLMProvider

DEFAULT_TIMEOUT = 60.0
_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*[ \t]*\n?(.*?)\n?\s*```\s*$", re.DOTALL)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def build_messages(config: Mapping[str, Any]) -> list[dict]:
    """``[system?, user?]`` messages from ``systemPrompt`` (+ ``contextVariables`` as JSON),
    ``userPrompt`` and, for ``outputFormat: json``, an instruction to answer with JSON
    matching ``outputSchema`` (OpenAI's JSON mode requires the prompt to mention JSON)."""
    system = _text(config["systemPrompt"]) if config.get("systemPrompt") is not None else ""
    context = config.get("contextVariables")
    if context:
        system += "\n\nContext variables (JSON):\n" + json.dumps(context, ensure_ascii=False, indent=2, default=str)
    if config.get("outputFormat") == "json":
        system += "\n\nRespond with a single JSON object and nothing else."
        if isinstance(config.get("outputSchema"), Mapping):
            system += " It must match this JSON schema:\n" + json.dumps(config["outputSchema"], ensure_ascii=False)
    messages = [{"role": "system", "content": system.strip()}] if system.strip() else []
    user = config.get("userPrompt")
    if user is not None and user != "":
        messages.append({"role": "user", "content": _text(user)})
    return messages


def parse_json_output(text: str) -> Any:
    """The JSON value in ``text`` (a surrounding ```json fence is removed); LLMError when invalid."""
    match = _FENCE.match(text)
    body = match.group(1) if match else text
    try:
        return json.loads(body)
    except ValueError as exc:
        start = " ".join(body.split())[:80]
        raise LLMError(f"LLM output is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): {start!r}") from None


def validate_output(value: Any, schema: Mapping[str, Any]) -> None:
    """Check ``value`` against the JSON schema ``schema`` (jsonschema); LLMError on a mismatch."""
    import jsonschema
    from jsonschema.exceptions import best_match

    try:
        validator_cls = jsonschema.validators.validator_for(schema)
        validator_cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise LLMError(f"outputSchema is not a valid JSON schema: {' '.join(exc.message.split())[:200]}") from None
    error = best_match(validator_cls(schema).iter_errors(value))
    if error is not None:
        where = error.json_path
        raise LLMError(f"LLM output does not match outputSchema at {where}: {' '.join(error.message.split())[:200]}")


def run_llm(config: Mapping[str, Any], provider: LLMProvider, *, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """Run an llm step whose config is already rendered; returns the text or the parsed JSON.

    Accepts tale's ``{llmNode: {...}}`` wrapper. ``outputFormat`` is ``text`` (default) or
    ``json`` (parsed, then validated against ``outputSchema`` when present). ``tools`` are
    ignored: tale's tools (rag_search, ...) need tale's platform, so the model answers without them.
    """
    if isinstance(config.get("llmNode"), Mapping):
        config = config["llmNode"]
    output_format = config.get("outputFormat") or "text"
    if output_format not in ("text", "json"):
        raise LLMError(f"outputFormat must be 'text' or 'json', got {output_format!r}")
    schema = config.get("outputSchema")
    if schema is not None and not isinstance(schema, Mapping):
        raise LLMError("outputSchema must be an object (a JSON schema)")
    model = config.get("model")
    messages = build_messages(config)
    if not messages:
        raise LLMError("llm step needs a systemPrompt or a userPrompt")
    json_mode = output_format == "json"
    try:
        text = provider.complete(messages, model=model if isinstance(model, str) and model else None,
                                 json_mode=json_mode, timeout=timeout, schema=schema if json_mode else None)
    except LLMError:
        raise
    except Exception as exc:
        raise LLMError(f"LLM provider failed: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from exc
    if not isinstance(text, str):
        raise LLMError(f"LLM provider returned {type(text).__name__}, not text")
    if not json_mode:
        return text
    value = parse_json_output(text)
    if schema:
        validate_output(value, schema)
    return value
