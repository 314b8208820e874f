"""Parse JEXL source into a small AST with lark (LALR, contextual lexer; see grammar.lark).

The AST is built during parsing by lark's LALR callbacks (no intermediate parse tree, no
recursion), and every node records its depth so that over-nested input is rejected before
anything recursive touches it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ..errors import ExpressionError
from .jsvalues import JS_WHITESPACE, UNDEFINED, normalize_number

#: Expressions nested deeper than this (operators, brackets, parentheses, transforms) are
#: rejected with an ExpressionError instead of risking Python's recursion limit.
MAX_DEPTH = 200

#: Longest source shown in an error message.
_SHOWN = 120


def quote_source(src: str, limit: int = _SHOWN) -> str:
    """``src`` quoted on one line for an error message, truncated when long."""
    if len(src) > limit:
        src = src[: limit - 1] + "\u2026"
    return repr(src)


class Node:
    """An AST node: ``kind`` and positional ``args``; ``rel`` says whether a relative
    identifier (``.x``) occurs in it outside any nested filter; ``depth`` its height."""

    __slots__ = ("kind", "args", "depth", "rel")

    def __init__(self, kind: str, args: tuple, children: tuple = (), rel: bool = False):
        self.kind = kind
        self.args = args
        depth = 1
        for c in children:
            if c.depth >= depth:
                depth = c.depth + 1
            if c.rel:
                rel = True
        if depth > MAX_DEPTH:
            raise _TooDeep()
        self.depth = depth
        self.rel = rel

    def __repr__(self) -> str:  # for debugging and test failure output
        return f"{self.kind}{self.args!r}"


class _TooDeep(Exception):
    pass


_ESCAPE_RE = re.compile(r"\\(.)", re.S)


def _unquote(text: str) -> str:
    quote, body = text[0], text[1:-1]
    if "\\" not in body:
        return body
    return _ESCAPE_RE.sub(lambda m: m.group(1) if m.group(1) in (quote, "\\") else m.group(0), body)


def _lit(value: Any) -> Node:
    return Node("lit", (value,))


def _binary(op: str):
    def build(self, children):
        left, right = children[0], children[-1]
        return Node("bin", (op, left, right), (left, right))
    return build


class _Builder(Transformer):
    """lark callbacks: one per grammar alias, each returning a :class:`Node`."""

    # literals -------------------------------------------------------------------------
    def number(self, c):
        return _lit(normalize_number(float(c[0])))

    def string(self, c):
        return _lit(_unquote(c[0]))

    def true(self, c):
        return _lit(True)

    def false(self, c):
        return _lit(False)

    def null(self, c):
        return _lit(None)

    def undefined(self, c):
        return _lit(UNDEFINED)

    def array(self, c):
        items = tuple(c[0]) if c and c[0] is not None else ()
        return Node("array", (items,), items)

    def object(self, c):
        pairs = tuple(c[0]) if c and c[0] is not None else ()
        return Node("object", (pairs,), tuple(v for _, v in pairs))

    def args(self, c):
        return [x for x in c if isinstance(x, Node)]

    def pairs(self, c):
        return [x for x in c if isinstance(x, tuple)]

    def pair(self, c):
        return (c[0], c[1])

    def key(self, c):
        tok = c[0]
        return _unquote(tok) if tok.type == "STRING" else str(tok)

    def prop(self, c):
        return str(c[0])

    # names ----------------------------------------------------------------------------
    def ident(self, c):
        return Node("ident", (str(c[0]),))

    def rel(self, c):
        return Node("rel", (c[0],), rel=True)

    def call(self, c):
        name: Token = c[0]
        args = tuple(c[1]) if len(c) > 1 and c[1] is not None else ()
        return Node("call", (str(name), args, name.column), args)

    # postfix ----------------------------------------------------------------------------
    def dot(self, c):
        obj, name = c
        return Node("dot", (obj, name), (obj,))

    def index(self, c):
        obj, key = c
        if key.rel:
            # JEXL: a bracket expression with a relative identifier filters the subject
            node = Node("filter", (obj, key), (obj,))
            node.depth = max(node.depth, key.depth + 1)
            if node.depth > MAX_DEPTH:
                raise _TooDeep()
            return node
        return Node("index", (obj, key), (obj, key))

    def transform(self, c):
        subject, name = c[0], c[1]
        args = tuple(c[2]) if len(c) > 2 and c[2] is not None else ()
        return Node("transform", (subject, str(name), args, name.column), (subject,) + args)

    # operators --------------------------------------------------------------------------
    def not_(self, c):
        return Node("not", (c[0],), (c[0],))

    def neg(self, c):
        x = c[0]
        if x.kind == "lit" and type(x.args[0]) in (int, float):
            return _lit(normalize_number(-x.args[0]))
        return Node("neg", (x,), (x,))

    def and_(self, c):
        return Node("and", (c[0], c[1]), (c[0], c[1]))

    def or_(self, c):
        return Node("or", (c[0], c[1]), (c[0], c[1]))

    def cond(self, c):
        test, cons, alt = c
        return Node("cond", (test, cons, alt), (test, cons, alt))

    def elvis(self, c):
        test, alt = c
        return Node("cond", (test, None, alt), (test, alt))

    eq = _binary("==")
    ne = _binary("!=")
    lt = _binary("<")
    le = _binary("<=")
    gt = _binary(">")
    ge = _binary(">=")
    in_ = _binary("in")
    add = _binary("+")
    sub = _binary("-")
    mul = _binary("*")
    div = _binary("/")
    floordiv = _binary("//")
    mod = _binary("%")
    pow = _binary("^")


_GRAMMAR = (Path(__file__).with_name("grammar.lark")).read_text(encoding="utf-8")
_PARSER = Lark(_GRAMMAR, parser="lalr", lexer="contextual", transformer=_Builder(),
               maybe_placeholders=True, propagate_positions=False)


def _where(src: str, line: int | None, column: int | None) -> str:
    if column is None or column < 0:
        return ""
    if line and line > 1:
        return f" at line {line}, column {column}"
    return f" at column {column}"


def _end(src: str) -> str:
    lines = src.split("\n")
    return _where(src, len(lines), len(lines[-1]) + 1)


def _syntax_message(src: str, e: UnexpectedInput) -> str:
    if isinstance(e, UnexpectedCharacters):
        ch = src[e.pos_in_stream] if 0 <= e.pos_in_stream < len(src) else ""
        return f"unexpected character {ch!r}{_where(src, e.line, e.column)}"
    if isinstance(e, UnexpectedToken):
        tok = e.token
        if tok.type == "$END":
            return f"unexpected end of expression{_end(src)}"
        return f"unexpected {quote_source(str(tok), 40)}{_where(src, tok.line, tok.column)}"
    if isinstance(e, UnexpectedEOF):
        return f"unexpected end of expression{_end(src)}"
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def parse(src: str) -> Node:
    """Parse JEXL ``src`` into a :class:`Node`; raises ExpressionError (one line, naming the
    expression and, for syntax errors, the column)."""
    if not isinstance(src, str):
        raise ExpressionError(f"an expression must be a string, not {type(src).__name__}")
    if not src.strip(JS_WHITESPACE):
        raise ExpressionError(f"empty expression {quote_source(src)}")
    try:
        return _PARSER.parse(src)
    except UnexpectedInput as e:
        raise ExpressionError(
            f"invalid expression {quote_source(src)}: {_syntax_message(src, e)}") from None
    except (_TooDeep, RecursionError):
        raise ExpressionError(
            f"expression nested too deeply (more than {MAX_DEPTH} levels): {quote_source(src)}"
        ) from None
    except LarkError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ExpressionError(f"invalid expression {quote_source(src)}: {first}") from None
