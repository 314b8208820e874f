"""Mustache-tokenized templates whose tags are JEXL expressions, as tale renders step config.

Tokenizing follows mustache.js ``Mustache.parse`` with the default ``{{ }}`` delimiters:
``{{expr}}``, ``{{{expr}}}`` and ``{{&expr}}`` are expression tags (whitespace inside the tag
is allowed; nothing is HTML-escaped), ``{{! ...}}`` is a comment and renders nothing. A
string that is exactly one expression tag renders to the raw typed value; otherwise each
tag is interpolated: strings as they are, numbers and booleans with JS ``String()``
(``1``, not ``1.0``), objects and arrays as compact JSON (``JSON.stringify``).

Unresolved tags, and where wfctl departs from tale (tale-project/tale
``lib/variables/replace_variables.ts`` and ``replace_variables_in_string.ts``):

* In a string with other text, a tag that evaluates to null or undefined raises
  :class:`TemplateError` ("unresolved template '...': 'name' is undefined"). tale (at the
  commit the notes describe) left the tag in the text and then failed the step with
  ``Unresolved template after rendering``; newer tale leaves it in place silently.
* A whole-string single tag: tale returns the raw evaluation result, null and undefined
  included, and never fails. wfctl returns null (``None``) as tale does, but raises
  TemplateError for undefined -- a missing name is almost always a stale reference (the
  shipped ``{{backoffHours}}`` examples) -- unless the caller passes
  ``allow_undefined=True``, which returns :data:`UNDEFINED` as tale would.
* Section, inverted-section, partial and delimiter-change tags (``{{#x}}``, ``{{^x}}``,
  ``{{/x}}``, ``{{>x}}``, ``{{=<% %>=}}``) raise TemplateError; tale's renderer silently
  drops them (and the text inside sections). An unclosed tag raises TemplateError, as
  Mustache.parse throws in tale.
* Mustache removes a line that holds only a comment tag; wfctl keeps that line's
  whitespace.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from ..errors import ExpressionError, TemplateError
from .evaluator import Expression, compile_expression
from .jsvalues import U, format_number, js_string, json_stringify
from .parser import quote_source

__all__ = ["Template", "compile_template", "render_value"]

_WS_RE = re.compile(r"\s*")
_TEMPLATE_SHOWN = 80


def _q(text: str) -> str:
    return quote_source(text, _TEMPLATE_SHOWN)


class _Tag:
    __slots__ = ("expr", "source")

    def __init__(self, expr: Expression, source: str):
        self.expr = expr
        self.source = source  # the expression text, trimmed


class Template:
    """A compiled template. ``render(context)`` renders it; ``roots`` is the union of its
    tags' top-level names; ``is_static`` is True when it has no tags at all."""

    __slots__ = ("text", "roots", "is_static", "tags", "_parts", "_single")

    def __init__(self, text: str, parts: list, single: _Tag | None, tag_count: int):
        self.text = text
        self._parts = tuple(parts)
        self._single = single
        self.tags: tuple[str, ...] = tuple(p.source for p in parts if isinstance(p, _Tag))
        self.is_static = tag_count == 0
        roots: set[str] = set()
        for p in parts:
            if isinstance(p, _Tag):
                roots |= p.expr.roots
        self.roots: frozenset[str] = frozenset(roots)

    def render(self, context: Mapping[str, Any] | None = None, *, allow_undefined: bool = False) -> Any:
        """Render against ``context``. A whole-string single tag returns its typed value
        (None for null; undefined raises unless ``allow_undefined``); anything else returns
        a string. Raises TemplateError."""
        if self.is_static:
            return self.text
        single = self._single
        if single is not None:
            v = self._eval(single, context)
            if v is U and not allow_undefined:
                raise self._unresolved(single, v)
            return v
        out = []
        for p in self._parts:
            if type(p) is str:
                out.append(p)
                continue
            v = self._eval(p, context)
            t = type(v)
            if t is str:
                out.append(v)
            elif v is None or v is U:
                raise self._unresolved(p, v)
            elif t is int or t is float:
                out.append(format_number(v))
            elif t is bool:
                out.append("true" if v else "false")
            else:
                try:
                    out.append(json_stringify(v))
                except RecursionError:
                    raise TemplateError(f"cannot render template {_q(self.text)}: "
                                        f"{quote_source(p.source, 60)} is nested too deeply") from None
        return "".join(out)

    def _eval(self, tag: _Tag, context: Any) -> Any:
        try:
            return tag.expr.evaluate(context)
        except ExpressionError as e:
            raise TemplateError(f"cannot render template {_q(self.text)}: {e}") from None

    def _unresolved(self, tag: _Tag, v: Any) -> TemplateError:
        what = "null" if v is None else "undefined"
        return TemplateError(
            f"unresolved template {_q(self.text)}: {quote_source(tag.source, 60)} is {what}")

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


def compile_template(text: str) -> Template:
    """Tokenize ``text`` and compile each tag's expression (cached). Raises TemplateError
    on an unclosed or unsupported tag or an invalid expression."""
    if type(text) is not str:
        if not isinstance(text, str):
            raise TemplateError(f"a template must be a string, not {type(text).__name__}")
        text = str(text)
    return _compile_cached(text)


@functools.lru_cache(maxsize=16384)
def _compile_cached(text: str) -> Template:  # noqa: C901 - one tokenizer loop
    if "{{" not in text:
        return Template(text, [text] if text else [], None, 0)
    parts: list = []
    tokens = 0  # Mustache tokens: text runs and tags (comments included)
    tags = 0
    single: _Tag | None = None
    pos = 0
    n = len(text)
    while pos < n:
        i = text.find("{{", pos)
        if i < 0:
            parts.append(text[pos:])
            tokens += 1
            break
        if i > pos:
            parts.append(text[pos:i])
            tokens += 1
        j = _WS_RE.match(text, i + 2).end()
        kind = text[j] if j < n and text[j] in "#^/>{&=!" else "name"
        if kind != "name":
            j += 1
        j = _WS_RE.match(text, j).end()
        if kind == "=":
            raise TemplateError(
                f"invalid template {_q(text)}: changing Mustache delimiters is not supported")
        # Mustache closes at the first `\s*}}` (`\s*}}}` for a triple-stache): the first
        # closing braces, with the whitespace before them trimmed from the value
        close = "}}}" if kind == "{" else "}}"
        k = text.find(close, j)
        if k < 0:
            raise TemplateError(f"invalid template {_q(text)}: unclosed tag at column {i + 1}")
        value = text[j:k].rstrip()
        pos = k + len(close)
        tokens += 1
        tags += 1
        if kind == "!":
            continue
        if kind in "#^/>":
            raise TemplateError(
                f"invalid template {_q(text)}: Mustache '{{{{{kind}' tags (sections, partials) "
                f"are not supported (column {i + 1})")
        source = value.strip()
        try:
            expr = compile_expression(source)
        except ExpressionError as e:
            raise TemplateError(f"invalid template {_q(text)}: {e}") from None
        single = _Tag(expr, source)
        parts.append(single)
    merged: list = []  # adjacent text runs (split by comments) joined
    for p in parts:
        if type(p) is str and merged and type(merged[-1]) is str:
            merged[-1] += p
        else:
            merged.append(p)
    return Template(text, merged, single if tokens == 1 else None, tags)


compile_template.cache_clear = _compile_cached.cache_clear  # type: ignore[attr-defined]
compile_template.cache_info = _compile_cached.cache_info  # type: ignore[attr-defined]


def _render(value: Any, context: Any, allow_undefined: bool) -> Any:
    t = type(value)
    if t is str:
        if "{{" not in value:
            return value
        return compile_template(value).render(context, allow_undefined=allow_undefined)
    if t is dict or isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if type(k) is str and "{{" in k:
                k = compile_template(k).render(context, allow_undefined=allow_undefined)
                if type(k) is not str:
                    k = js_string(k)  # JS property keys are strings
            out[k] = _render(v, context, allow_undefined)
        return out
    if t is list or isinstance(value, (list, tuple)):
        return [_render(v, context, allow_undefined) for v in value]
    return value


def render_value(value: Any, context: Mapping[str, Any] | None = None, *,
                 allow_undefined: bool = False) -> Any:
    """Render every string, and every dict key, inside a JSON-like ``value`` (dicts and
    lists recursively), returning a new value; the input is never mutated. Strings without
    ``{{`` are kept as they are. Raises TemplateError (see :meth:`Template.render`)."""
    try:
        return _render(value, context, allow_undefined)
    except TemplateError:
        raise
    except RecursionError:
        raise TemplateError("cannot render a value nested this deeply") from None
    except ExpressionError as e:
        raise TemplateError(str(e)) from None
    except Exception as e:  # pragma: no cover - defensive: only TemplateError may escape
        raise TemplateError(f"cannot render value: {type(e).__name__}: {e}") from None
