"""Compile a JEXL AST into nested Python closures and evaluate them with JS semantics.

Each AST node becomes one closure taking the evaluation scope, so evaluating a compiled
expression is a chain of plain function calls: no tree walking, no per-node type dispatch.
Outside filters the scope is the context mapping itself; inside a relative filter body
(``arr[.x == 1]``) it is the pair ``(context, element)``, and the body is compiled for that
scope, so top-level code pays nothing for filters.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ExpressionError
from . import transforms as _transforms
from .jsvalues import (
    MAX_SAFE,
    U,
    dot_value,
    format_number,
    get_member,
    index_value,
    js_add,
    js_div,
    js_floordiv,
    js_ge,
    js_gt,
    js_le,
    js_lt,
    js_mod,
    js_mul,
    js_neg,
    js_pow,
    js_string,
    js_sub,
    loose_equal,
    strict_equal,
    truthy,
)
from .parser import Node, parse, quote_source

__all__ = ["Expression", "compile_expression", "evaluate"]

Fn = Callable[[Any], Any]


class _EvalError(Exception):
    """An evaluation failure; Expression.evaluate adds the expression to the message."""


_EMPTY: Mapping = {}


class Expression:
    """A compiled JEXL expression. ``evaluate(context)`` runs it; ``roots`` names the
    top-level identifiers it reads; ``source`` is the text it was compiled from."""

    __slots__ = ("source", "roots", "_fn")

    def __init__(self, source: str, fn: Fn, roots: frozenset[str]):
        self.source = source
        self.roots = roots
        self._fn = fn

    def evaluate(self, context: Mapping[str, Any] | None = None) -> Any:
        """Evaluate against ``context`` (a mapping of top-level names; None = empty).
        Returns a JS-like value (may be :data:`UNDEFINED`); raises ExpressionError."""
        if type(context) is not dict:
            if context is None:
                context = _EMPTY
            elif not isinstance(context, Mapping):
                raise ExpressionError(
                    f"cannot evaluate {quote_source(self.source)}: the context must be a "
                    f"mapping, not {type(context).__name__}")
        try:
            return self._fn(context)
        except Exception as e:
            raise self._error(e) from None

    __call__ = evaluate

    def _error(self, e: BaseException) -> ExpressionError:
        where = quote_source(self.source)
        if isinstance(e, _EvalError):
            return ExpressionError(f"cannot evaluate {where}: {e}")
        if isinstance(e, RecursionError):
            return ExpressionError(f"cannot evaluate {where}: value nested too deeply")
        if isinstance(e, ExpressionError):
            msg = str(e)
            return e if self.source in msg else ExpressionError(f"cannot evaluate {where}: {msg}")
        if isinstance(e, MemoryError):
            return ExpressionError(f"cannot evaluate {where}: out of memory")
        detail = str(e).splitlines()[0] if str(e) else ""
        return ExpressionError(
            f"cannot evaluate {where}: {type(e).__name__}{': ' + detail if detail else ''}")

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def compile_expression(src: str) -> Expression:
    """Parse and compile JEXL ``src`` (cached). Raises ExpressionError on a syntax error,
    an unknown transform, a function call, or over-deep nesting."""
    if type(src) is not str:
        if not isinstance(src, str):
            raise ExpressionError(f"an expression must be a string, not {type(src).__name__}")
        src = str(src)
    return _compile_cached(src)


@functools.lru_cache(maxsize=16384)
def _compile_cached(src: str) -> Expression:
    node = parse(src)
    try:
        fn = _Compiler(src).compile(node, False)
    except ExpressionError:
        raise
    except RecursionError:
        raise ExpressionError(f"expression nested too deeply: {quote_source(src)}") from None
    return Expression(src, fn, frozenset(_roots(node)))


compile_expression.cache_clear = _compile_cached.cache_clear  # type: ignore[attr-defined]
compile_expression.cache_info = _compile_cached.cache_info  # type: ignore[attr-defined]


def evaluate(src: str, context: Mapping[str, Any] | None = None) -> Any:
    """Compile (cached) and evaluate ``src`` against ``context``."""
    return compile_expression(src).evaluate(context)


# ---------------------------------------------------------------------------------------
# roots


def _roots(node: Node) -> set[str]:
    """Top-level names read: identifiers, plus relative names used outside any filter
    (JEXL resolves those against the context)."""
    out: set[str] = set()
    stack: list[tuple[Any, bool]] = [(node, False)]
    while stack:
        n, in_filter = stack.pop()
        if not isinstance(n, Node):
            continue
        kind = n.kind
        if kind == "ident":
            out.add(n.args[0])
        elif kind == "rel":
            if not in_filter:
                out.add(n.args[0])
        elif kind == "filter":
            stack.append((n.args[0], in_filter))
            stack.append((n.args[1], True))
        elif kind != "lit":
            for a in n.args:
                if isinstance(a, Node):
                    stack.append((a, in_filter))
                elif isinstance(a, tuple):  # arrays, transform args, object (key, value) pairs
                    for x in a:
                        if isinstance(x, tuple):
                            stack.extend((y, in_filter) for y in x)
                        else:
                            stack.append((x, in_filter))
    return out


# ---------------------------------------------------------------------------------------
# compiler


def _describe_key(k: Any) -> str:
    if type(k) is str:
        return repr(k)
    if type(k) in (int, float):
        return format_number(k)
    return repr(js_string(k))


def _read_error(obj: Any, key: Any) -> _EvalError:
    what = "null" if obj is None else "undefined"
    return _EvalError(f"cannot read property {_describe_key(key)} of {what}")


def _num(x: Any) -> bool:
    t = type(x)
    return t is int or t is float


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": js_add,
    "-": js_sub,
    "*": js_mul,
    "/": js_div,
    "//": js_floordiv,
    "%": js_mod,
    "^": js_pow,
    "==": loose_equal,
    "!=": lambda a, b: not loose_equal(a, b),
    "<": js_lt,
    "<=": js_le,
    ">": js_gt,
    ">=": js_ge,
}


def _js_in(a: Any, b: Any) -> bool:
    """JEXL ``in``: substring of a string (left converted with String()), or an element of an
    array by strict equality (Array.prototype.includes-like, but NaN never matches)."""
    tb = type(b)
    if tb is str:
        return (a if type(a) is str else js_string(a)) in b
    if tb is list or isinstance(b, (list, tuple)):
        ta = type(a)
        if ta is str:
            for e in b:
                if type(e) is str and e == a:
                    return True
            return False
        for e in b:
            if strict_equal(e, a):
                return True
        return False
    return False


_BINARY["in"] = _js_in


class _Compiler:
    def __init__(self, src: str):
        self.src = src

    # scope helpers ----------------------------------------------------------------------
    @staticmethod
    def _root_getter(name: str, rel: bool) -> Fn:
        if rel:
            def get_rel_scope(s, _n=name, _U=U):
                return s[0].get(_n, _U)
            return get_rel_scope

        def get_root(c, _n=name, _U=U):
            return c.get(_n, _U)
        return get_root

    def compile(self, node: Node, rel: bool) -> Fn:
        method = getattr(self, "_c_" + node.kind)
        return method(node, rel)

    # leaves ----------------------------------------------------------------------------
    def _c_lit(self, node: Node, rel: bool) -> Fn:
        value = node.args[0]
        return lambda c, _v=value: _v

    def _c_ident(self, node: Node, rel: bool) -> Fn:
        return self._root_getter(node.args[0], rel)

    def _c_rel(self, node: Node, rel: bool) -> Fn:
        name = node.args[0]
        if not rel:
            # outside a filter JEXL resolves relative names against the context itself
            return self._root_getter(name, False)

        def get_relative(s, _n=name, _get=get_member, _U=U):
            e = s[1]
            if type(e) is dict:
                return e.get(_n, _U)
            if e is None or e is _U:
                return _U
            return _get(e, _n)
        return get_relative

    def _c_call(self, node: Node, rel: bool) -> Fn:
        name = node.args[0]
        hint = (f"; use the transform syntax value|{name}" if name in _transforms.TRANSFORMS
                else "")
        raise ExpressionError(
            f"unknown function '{name}' in expression {quote_source(self.src)}: no functions "
            f"are available{hint}")

    # member access ----------------------------------------------------------------------
    def _c_dot(self, node: Node, rel: bool) -> Fn:
        # collapse a chain a.b.c.d into one closure
        names: list[str] = []
        n = node
        while n.kind == "dot":
            names.append(n.args[1])
            n = n.args[0]
        names.reverse()
        if n.kind == "ident" and not rel:
            return _root_path(n.args[0], tuple(names))
        base = self.compile(n, rel)
        return _path_from(base, tuple(names))

    def _c_index(self, node: Node, rel: bool) -> Fn:
        obj_fn = self.compile(node.args[0], rel)
        key_node = node.args[1]
        if key_node.kind == "lit":
            key = key_node.args[0]
            if key is True:
                return obj_fn
            if key is False:
                return lambda c: U
            if type(key) is int:
                def index_int(c, _o=obj_fn, _k=key, _U=U, _iv=index_value):
                    o = _o(c)
                    if type(o) is list:
                        return o[_k] if 0 <= _k < len(o) else _U
                    if o is None or o is _U:
                        raise _read_error(o, _k)
                    return _iv(o, _k)
                return index_int

            def index_const(c, _o=obj_fn, _k=key, _U=U, _iv=index_value):
                o = _o(c)
                if type(o) is dict and type(_k) is str:
                    return o.get(_k, _U)
                if o is None or o is _U:
                    raise _read_error(o, _k)
                return _iv(o, _k)
            return index_const

        key_fn = self.compile(key_node, rel)

        def index_dynamic(c, _o=obj_fn, _kf=key_fn, _U=U, _iv=index_value):
            o = _o(c)
            k = _kf(c)
            if k is True:
                return o
            if k is False:
                return _U
            if o is None or o is _U:
                raise _read_error(o, k)
            return _iv(o, k)
        return index_dynamic

    def _c_filter(self, node: Node, rel: bool) -> Fn:
        subject_fn = self.compile(node.args[0], rel)
        body_fn = self.compile(node.args[1], True)

        def filter_relative(c, _s=subject_fn, _b=body_fn, _U=U, _truthy=truthy, _rel=rel):
            subject = _s(c)
            if type(subject) is not list:
                if subject is _U:
                    return []
                subject = list(subject) if isinstance(subject, tuple) else [subject]
            root = c[0] if _rel else c
            out = []
            for elem in subject:
                if _truthy(_b((root, elem))):
                    out.append(elem)
            return out
        return filter_relative

    def _c_transform(self, node: Node, rel: bool) -> Fn:
        subject_node, name, arg_nodes, column = node.args
        fn = _transforms.TRANSFORMS.get(name)
        if fn is None:
            raise ExpressionError(
                f"unknown transform '{name}' at column {column} in expression "
                f"{quote_source(self.src)}")
        subject_fn = self.compile(subject_node, rel)
        arg_fns = tuple(self.compile(a, rel) for a in arg_nodes)

        def fail(e: Exception) -> _EvalError:
            if isinstance(e, (_EvalError, RecursionError)):
                return e
            detail = str(e).splitlines()[0] if str(e) else type(e).__name__
            return _EvalError(f"transform '{name}' failed: {detail}")

        if not arg_fns:
            def transform0(c, _f=fn, _s=subject_fn):
                v = _s(c)
                try:
                    return _f(v)
                except Exception as e:
                    raise fail(e) from None
            return transform0
        if len(arg_fns) == 1:
            (a0,) = arg_fns

            def transform1(c, _f=fn, _s=subject_fn, _a0=a0):
                v = _s(c)
                x = _a0(c)
                try:
                    return _f(v, x)
                except Exception as e:
                    raise fail(e) from None
            return transform1

        def transform_n(c, _f=fn, _s=subject_fn, _a=arg_fns):
            v = _s(c)
            args = [a(c) for a in _a]
            try:
                return _f(v, *args)
            except Exception as e:
                raise fail(e) from None
        return transform_n

    # literals with parts ----------------------------------------------------------------
    def _c_array(self, node: Node, rel: bool) -> Fn:
        fns = tuple(self.compile(x, rel) for x in node.args[0])
        return lambda c, _f=fns: [f(c) for f in _f]

    def _c_object(self, node: Node, rel: bool) -> Fn:
        pairs = tuple((k, self.compile(v, rel)) for k, v in node.args[0])

        def make_object(c, _p=pairs):
            return {k: f(c) for k, f in _p}
        return make_object

    # operators ----------------------------------------------------------------------------
    def _c_not(self, node: Node, rel: bool) -> Fn:
        x = self.compile(node.args[0], rel)

        def not_(c, _x=x, _truthy=truthy):
            v = _x(c)
            if v is True:
                return False
            if v is False:
                return True
            return not _truthy(v)
        return not_

    def _c_neg(self, node: Node, rel: bool) -> Fn:
        x = self.compile(node.args[0], rel)
        return lambda c, _x=x: js_neg(_x(c))

    def _c_and(self, node: Node, rel: bool) -> Fn:
        left = self.compile(node.args[0], rel)
        right = self.compile(node.args[1], rel)

        def and_(c, _l=left, _r=right, _truthy=truthy):
            v = _l(c)
            if v is True:
                return _r(c)
            if v is False or v is None:
                return v
            return _r(c) if _truthy(v) else v
        return and_

    def _c_or(self, node: Node, rel: bool) -> Fn:
        left = self.compile(node.args[0], rel)
        right = self.compile(node.args[1], rel)

        def or_(c, _l=left, _r=right, _truthy=truthy):
            v = _l(c)
            if v is True:
                return v
            if v is False or v is None:
                return _r(c)
            return v if _truthy(v) else _r(c)
        return or_

    def _c_cond(self, node: Node, rel: bool) -> Fn:
        test = self.compile(node.args[0], rel)
        alt = self.compile(node.args[2], rel)
        if node.args[1] is None:
            def elvis(c, _t=test, _a=alt, _truthy=truthy):
                v = _t(c)
                return v if _truthy(v) else _a(c)
            return elvis
        cons = self.compile(node.args[1], rel)

        def cond(c, _t=test, _c=cons, _a=alt, _truthy=truthy):
            v = _t(c)
            if v is True or (v is not False and _truthy(v)):
                return _c(c)
            return _a(c)
        return cond

    def _c_bin(self, node: Node, rel: bool) -> Fn:
        op, left_node, right_node = node.args
        left = self.compile(left_node, rel)
        right = self.compile(right_node, rel)
        slow = _BINARY[op]
        const = right_node.args[0] if right_node.kind == "lit" else U
        if op in ("<", "<=", ">", ">=") and _num(const):
            return _COMPARE_CONST[op](left, const, slow)
        if op in ("<", "<=", ">", ">="):
            return _COMPARE[op](left, right, slow)
        if op == "==" or op == "!=":
            return _equality(left, right, op == "!=")
        if op == "+":
            def add(c, _l=left, _r=right, _M=MAX_SAFE):
                a = _l(c)
                b = _r(c)
                ta = type(a)
                if ta is type(b):
                    if ta is int:
                        r = a + b
                        if -_M <= r <= _M:
                            return r
                    elif ta is str:
                        return a + b
                return js_add(a, b)
            return add
        if op == "-":
            def sub(c, _l=left, _r=right, _M=MAX_SAFE):
                a = _l(c)
                b = _r(c)
                if type(a) is int and type(b) is int:
                    r = a - b
                    if -_M <= r <= _M:
                        return r
                return js_sub(a, b)
            return sub
        return lambda c, _l=left, _r=right, _f=slow: _f(_l(c), _r(c))


# ---------------------------------------------------------------------------------------
# specialised closures


def _root_path(name: str, keys: tuple[str, ...]) -> Fn:
    """``name.k1.k2...`` read from the context (the hot path of most conditions)."""
    dv = dot_value
    if len(keys) == 1:
        (k1,) = keys

        def path1(c, _n=name, _k1=k1, _U=U):
            v = c.get(_n, _U)
            return v.get(_k1, _U) if type(v) is dict else dv(v, _k1)
        return path1
    if len(keys) == 2:
        k1, k2 = keys

        def path2(c, _n=name, _k1=k1, _k2=k2, _U=U):
            v = c.get(_n, _U)
            v = v.get(_k1, _U) if type(v) is dict else dv(v, _k1)
            return v.get(_k2, _U) if type(v) is dict else dv(v, _k2)
        return path2
    if len(keys) == 3:
        k1, k2, k3 = keys

        def path3(c, _n=name, _k1=k1, _k2=k2, _k3=k3, _U=U):
            v = c.get(_n, _U)
            v = v.get(_k1, _U) if type(v) is dict else dv(v, _k1)
            v = v.get(_k2, _U) if type(v) is dict else dv(v, _k2)
            return v.get(_k3, _U) if type(v) is dict else dv(v, _k3)
        return path3

    def path_n(c, _n=name, _keys=keys, _U=U):
        v = c.get(_n, _U)
        for k in _keys:
            v = v.get(k, _U) if type(v) is dict else dv(v, k)
        return v
    return path_n


def _path_from(base: Fn, keys: tuple[str, ...]) -> Fn:
    dv = dot_value
    if len(keys) == 1:
        (k1,) = keys

        def dot1(c, _b=base, _k1=k1, _U=U):
            v = _b(c)
            return v.get(_k1, _U) if type(v) is dict else dv(v, _k1)
        return dot1

    def dot_n(c, _b=base, _keys=keys, _U=U):
        v = _b(c)
        for k in _keys:
            v = v.get(k, _U) if type(v) is dict else dv(v, k)
        return v
    return dot_n


def _equality(left: Fn, right: Fn, negate: bool) -> Fn:
    if negate:
        def ne(c, _l=left, _r=right, _eq=loose_equal):
            a = _l(c)
            b = _r(c)
            t = type(a)
            if t is type(b) and (t is str or t is int or t is bool):
                return a != b
            return not _eq(a, b)
        return ne

    def eq(c, _l=left, _r=right, _eq=loose_equal):
        a = _l(c)
        b = _r(c)
        t = type(a)
        if t is type(b) and (t is str or t is int or t is bool):
            return a == b
        return _eq(a, b)
    return eq


def _make_compare(op: str) -> Callable[[Fn, Fn, Callable], Fn]:
    import operator

    pyop = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}[op]

    def build(left: Fn, right: Fn, slow: Callable) -> Fn:
        def compare(c, _l=left, _r=right, _op=pyop, _slow=slow):
            a = _l(c)
            b = _r(c)
            ta = type(a)
            tb = type(b)
            if (ta is int or ta is float) and (tb is int or tb is float):
                return _op(a, b)
            return _slow(a, b)
        return compare
    return build


def _make_compare_const(op: str) -> Callable[[Fn, Any, Callable], Fn]:
    def build(left: Fn, k: Any, slow: Callable) -> Fn:
        if op == ">":
            def gt(c, _l=left, _k=k, _slow=slow):
                a = _l(c)
                t = type(a)
                if t is int or t is float:
                    return a > _k
                return _slow(a, _k)
            return gt
        if op == ">=":
            def ge(c, _l=left, _k=k, _slow=slow):
                a = _l(c)
                t = type(a)
                if t is int or t is float:
                    return a >= _k
                return _slow(a, _k)
            return ge
        if op == "<":
            def lt(c, _l=left, _k=k, _slow=slow):
                a = _l(c)
                t = type(a)
                if t is int or t is float:
                    return a < _k
                return _slow(a, _k)
            return lt

        def le(c, _l=left, _k=k, _slow=slow):
            a = _l(c)
            t = type(a)
            if t is int or t is float:
                return a <= _k
            return _slow(a, _k)
        return le
    return build


_COMPARE = {op: _make_compare(op) for op in ("<", "<=", ">", ">=")}
_COMPARE_CONST = {op: _make_compare_const(op) for op in ("<", "<=", ">", ">=")}
