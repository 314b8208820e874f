"""Values derived from secrets: sealed in the loop state, detected in rendered templates.

Step outputs, merged variables, errors and log lines are *redacted* (every hidden string
becomes ``***``). The loop variable and its item/index aliases cannot be: a loop over secrets
must hand the body the real values. There, every string that contains a hidden value is
*sealed*: stored as ``{"$wfctl.sealed": <Fernet token>}`` and unsealed (and hidden again) when
the next step runs.

Hidden values are the run's secrets, the values unsealed for this step, and the values a
template *derives* from them: a tag that reads ``secrets``, ``loop`` or a loop alias is
evaluated a second time against decoys (each hidden string with every character changed);
when the two results differ, the strings of the real result are derived (``{{secrets.T|upper}}``,
``{{'Bearer ' + secrets.T}}``), and are hidden too. Only strings are hidden: a number or
boolean computed from a secret is stored as it is.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Mapping

SEALED = "$wfctl.sealed"
_CACHE_LIMIT = 4096
_FAILED = object()


def decoy(value: str) -> str:
    """A string of the same length as ``value`` that differs from it at every position."""
    return "".join("y" if c == "x" else "x" for c in value)


def is_sealed(value: Any) -> bool:
    """True for a sealed value ``{"$wfctl.sealed": token}``."""
    return type(value) is dict and len(value) == 1 and SEALED in value


def loop_keys(variables: Mapping[str, Any]) -> list[str]:
    """The variables that may hold sealed values: ``loop`` and the aliases its frames name."""
    keys = ["loop"]
    frame = variables.get("loop")
    while isinstance(frame, Mapping):
        for key in ("itemVariable", "indexVariable"):
            name = frame.get(key)
            if isinstance(name, str) and name and name not in keys:
                keys.append(name)
        frame = frame.get("parent")
    return keys


class Sealer:
    """Seals and unseals strings with a SecretBox, remembering recent tokens (a loop re-stores its
    items at every iteration: each is encrypted once per process, not once per step)."""

    def __init__(self, box: Any):
        self.box = box
        self._tokens: dict[str, str] = {}
        self._plain: dict[str, str] = {}

    def _token(self, text: str) -> str:
        token = self._tokens.get(text)
        if token is None:
            if len(self._tokens) >= _CACHE_LIMIT:
                self._tokens.clear()
            token = self._tokens[text] = self.box.encrypt(text)
        return token

    def _open(self, token: str) -> str:
        text = self._plain.get(token)
        if text is None:
            if len(self._plain) >= _CACHE_LIMIT:
                self._plain.clear()
            text = self._plain[token] = self.box.decrypt(token)
        return text

    def seal(self, value: Any, hidden: Iterable[str]) -> Any:
        """``value`` with every string that contains a hidden value (of 4 characters or more, or
        equal to a shorter one) sealed; a dict with such a key is sealed whole, as JSON."""
        from ..secrets import MIN_REDACT_LENGTH, _pattern

        hidden = {h for h in hidden if isinstance(h, str) and h}
        if not hidden:
            return value
        long = frozenset(h for h in hidden if len(h) >= MIN_REDACT_LENGTH)
        short = hidden - long
        pattern = _pattern(long) if long else None

        def tainted(text: str) -> bool:
            return text in short or (pattern is not None and pattern.search(text) is not None)

        def walk(v: Any) -> Any:
            if isinstance(v, str):
                return {SEALED: self._token(v)} if tainted(v) else v
            if isinstance(v, Mapping):
                if is_sealed(v):
                    return v
                if any(isinstance(k, str) and tainted(k) for k in v):
                    import json

                    return {SEALED: self._token("\x00json:" + json.dumps(v, ensure_ascii=False))}
                return {k: walk(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [walk(x) for x in v]
            return v

        return walk(value)

    def unseal(self, value: Any, hidden: list[str]) -> tuple[Any, Any]:
        """``(value unsealed, value with decoys where sealed)``; each unsealed string is appended to ``hidden``."""
        def walk(v: Any) -> tuple[Any, Any]:
            if is_sealed(v):
                text = self._open(v[SEALED])
                if text.startswith("\x00json:"):
                    import json

                    return walk_plain(json.loads(text[6:]))
                hidden.append(text)
                return text, decoy(text)
            if isinstance(v, Mapping):
                pairs = {k: walk(x) for k, x in v.items()}
                return {k: p[0] for k, p in pairs.items()}, {k: p[1] for k, p in pairs.items()}
            if isinstance(v, list):
                pairs = [walk(x) for x in v]
                return [p[0] for p in pairs], [p[1] for p in pairs]
            return v, v

        def walk_plain(v: Any) -> tuple[Any, Any]:  # a whole dict sealed as JSON: all its strings are hidden
            if isinstance(v, str):
                hidden.append(v)
                return v, decoy(v)
            if isinstance(v, dict):
                pairs = {k: (walk_plain(k), walk_plain(x)) for k, x in v.items()}
                return ({k[0]: x[0] for k, x in pairs.values()}, {k[1]: x[1] for k, x in pairs.values()})
            if isinstance(v, list):
                pairs = [walk_plain(x) for x in v]
                return [p[0] for p in pairs], [p[1] for p in pairs]
            return v, v

        return walk(value)


def _template_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if "{{" in value:
            yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _template_strings(key)
            yield from _template_strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _template_strings(item)


def strings_in(value: Any) -> Iterator[str]:
    """Every string inside a JSON-like value (dict keys included)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from strings_in(key)
            yield from strings_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from strings_in(item)


def derived_strings(value: Any, real: Mapping[str, Any], fake: Mapping[str, Any],
                    tainted: Callable[[frozenset], bool]) -> set[str]:
    """The strings of every tag result in ``value``'s templates that differs between the ``real``
    variables and the ``fake`` ones (decoys for hidden values); only tags whose roots are
    ``tainted`` are evaluated twice."""
    from ..expressions import compile_expression, compile_template

    found: set[str] = set()
    for text in _template_strings(value):
        try:
            sources = compile_template(text).tags
        except Exception:  # an invalid template: rendering reports it
            continue
        for source in sources:
            try:
                expr = compile_expression(source)
                if not tainted(expr.roots):
                    continue
                result = expr.evaluate(real)
            except Exception:
                continue
            try:
                other = expr.evaluate(fake)
            except Exception:
                other = _FAILED
            _differing(result, other, found)
    return found


def _differing(real: Any, fake: Any, found: set[str]) -> None:
    """Add to ``found`` the strings of ``real`` that differ from ``fake`` (element by element
    when both are arrays of one length or objects with the same keys)."""
    if isinstance(real, Mapping) and isinstance(fake, Mapping) and list(real) == list(fake):
        for key in real:
            _differing(real[key], fake[key], found)
    elif isinstance(real, (list, tuple)) and isinstance(fake, (list, tuple)) and len(real) == len(fake):
        for a, b in zip(real, fake):
            _differing(a, b, found)
    elif not _same(real, fake):
        found.update(strings_in(real))


def _same(a: Any, b: Any) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False
