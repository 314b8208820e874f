"""Parsing definition and stubs files strictly: duplicate keys are errors, YAML aliases are refused.

``json.loads`` keeps the last of two equal keys and ``yaml.safe_load`` the last too, so a
file that says one thing twice silently means the second. YAML aliases (``*name``) let a few
hundred bytes expand into gigabytes (the "billion laughs") or into a structure that contains
itself; definitions and stubs files never need them, so they are refused where they appear.
Both loaders raise :class:`StrictLoadError` with a one-line message naming the key and where.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

import yaml


class StrictLoadError(ValueError):
    """A duplicate key or a YAML alias; ``str()`` is one line saying what and where."""


class _Duplicate(dict):
    """A JSON object that had a duplicate key (found and located after parsing)."""

    key: str


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    marked = _Duplicate(obj)
    marked.key = next(k for k, _ in pairs if k in seen or seen.add(k))
    return marked


def _locate(value: Any) -> tuple[str, str] | None:
    """``(key, path)`` of the first object that had a duplicate key, breadth first."""
    todo: deque[tuple[Any, str]] = deque([(value, "")])
    while todo:
        node, path = todo.popleft()
        if isinstance(node, _Duplicate):
            return node.key, path or "the top level"
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            if isinstance(child, (dict, list)):
                todo.append((child, f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else key))
    return None


def load_json(text: str) -> Any:
    """``json.loads`` that raises :class:`StrictLoadError` on a duplicate key (naming it and its object)."""
    found = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = _pairs(pairs)
        if isinstance(obj, _Duplicate):
            found.append(obj)
        return obj

    value = json.loads(text, object_pairs_hook=hook)
    if found:
        key, path = _locate(value) or (found[0].key, "?")
        raise StrictLoadError(f"duplicate key {_quote(key)} in {_quote(path) if path != 'the top level' else path}")
    return value


def _quote(text: str, limit: int = 60) -> str:
    """``'text'`` on one line, shortened when long."""
    shown = repr(text)[1:-1].replace("'", "\\'")
    return f"'{shown[:limit]}...'" if len(shown) > limit else f"'{shown}'"


class StrictYAMLLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases and duplicate mapping keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise StrictLoadError(f"YAML aliases are not allowed (found *{event.anchor}{_at(event.start_mark)})")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<': merged keys may be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class reports it
                break
            if duplicate:
                raise StrictLoadError(f"duplicate key {_quote(str(key))}{_at(key_node.start_mark)}")
        return super().construct_mapping(node, deep=deep)


def _at(mark: Any) -> str:
    return f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""


class StrictYAMLLoaderNoDates(StrictYAMLLoader):
    """:class:`StrictYAMLLoader` without YAML's timestamp type: dates stay strings, as in JSON."""


StrictYAMLLoaderNoDates.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in StrictYAMLLoader.yaml_implicit_resolvers.items()
}


def load_yaml(text: str, *, dates: bool = True) -> Any:
    """Parse YAML safely, raising :class:`StrictLoadError` on an alias or a duplicate key
    (``dates`` False: timestamps stay strings)."""
    return yaml.load(text, Loader=StrictYAMLLoader if dates else StrictYAMLLoaderNoDates)
