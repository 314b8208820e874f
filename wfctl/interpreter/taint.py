"""Values derived from secrets: sealed in the loop state, detected in rendered templates.

Step outputs, merged variables, errors and log lines are *redacted* (every hidden string
becomes ``***``). The loop variable and its item/index aliases cannot be: a loop over secrets
must hand the body the real values. There, a loop frame's ``items`` or ``item`` (or an alias's
value) that holds a string containing a hidden value is *sealed*: stored as
``{"$wfctl.sealed": <Fernet token>}`` and unsealed (and hidden again) when the next step runs.

Hidden values are the run's secrets, the values unsealed for this step, and the values a
template *derives* from them: a tag that reads ``secrets`` or a sealed loop value is evaluated
a second time against decoys (each hidden string with every character changed); the strings of
the real result that differ are derived (``{{secrets.T|upper}}``, ``{{'Bearer ' + secrets.T}}``)
and hidden too. Only strings are hidden: a number or boolean computed from a secret is stored
as it is.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterator, Mapping

SEALED = "$wfctl.sealed"
_CACHE_LIMIT = 1024
_FAILED = object()


def decoy(value: str) -> str:
    """A string of the same length as ``value`` that differs from it at every position."""
    return "".join("y" if c == "x" else "x" for c in value)


def is_sealed(value: Any) -> bool:
    """True for a sealed value ``{"$wfctl.sealed": token}``."""
    return type(value) is dict and len(value) == 1 and SEALED in value


def loop_aliases(variables: Mapping[str, Any]) -> list[str]:
    """The top-level variables the loop frames of ``variables`` name as item/index aliases."""
    names: list[str] = []
    frame = variables.get("loop")
    while isinstance(frame, Mapping):
        for key in ("itemVariable", "indexVariable"):
            name = frame.get(key)
            if isinstance(name, str) and name and name != "loop" and name not in names:
                names.append(name)
        frame = frame.get("parent")
    return names


def _replace_strings(value: Any, chosen: set[str], fn: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fn(value) if value in chosen else value
    if isinstance(value, Mapping):
        return {_replace_strings(k, chosen, fn): _replace_strings(v, chosen, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_strings(v, chosen, fn) for v in value]
    return value


class Sealer:
    """Seals and unseals values with a SecretBox.

    A loop stores its items again at every iteration: the last values sealed and unsealed are
    remembered (by identity, with the hidden values they were checked against), so a long loop
    costs one walk of its items, not one per step.
    """

    def __init__(self, box: Any):
        self.box = box
        # id(value) -> (value, the hidden values it was checked against (None: any), its stored form)
        self._sealed: dict[int, tuple[Any, frozenset | None, Any]] = {}
        self._opened: dict[str, tuple[Any, Any, tuple[str, ...]]] = {}  # token -> (value, decoy, tainted)

    @staticmethod
    def _remember(cache: dict, key: Any, entry: Any) -> None:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[key] = entry

    def seal(self, value: Any, hidden: frozenset[str]) -> Any:
        """``value``, or its sealed form when one of its strings contains a hidden value (4 characters
        or more, or equal to a shorter one)."""
        if not hidden or is_sealed(value) or value is None or isinstance(value, (bool, int, float)):
            return value
        cached = self._sealed.get(id(value))
        if cached is not None and cached[0] is value and cached[1] in (None, hidden):
            return cached[2]
        from ..secrets import MIN_REDACT_LENGTH, _pattern

        long = frozenset(h for h in hidden if len(h) >= MIN_REDACT_LENGTH)
        pattern = _pattern(long) if long else None
        tainted = sorted({s for s in strings_in(value)
                          if s in hidden or (pattern is not None and pattern.search(s) is not None)})
        stored = value
        if tainted:
            text = json.dumps({"v": value, "t": tainted}, ensure_ascii=False)
            stored = {SEALED: self.box.encrypt(text)}
        if isinstance(value, (list, dict)):
            self._remember(self._sealed, id(value), (value, hidden, stored))
        return stored

    def unseal(self, stored: Any) -> tuple[Any, Any, tuple[str, ...]]:
        """``(value, value with decoys for its tainted strings, the tainted strings)`` of a sealed value."""
        token = stored[SEALED]
        opened = self._opened.get(token)
        if opened is None:
            data = json.loads(self.box.decrypt(token))
            value, tainted = data["v"], tuple(data["t"])
            opened = (value, _replace_strings(value, set(tainted), decoy), tainted)
            self._remember(self._opened, token, opened)
            if isinstance(value, (list, dict)):  # sealing the same object again is free
                self._remember(self._sealed, id(value), (value, None, stored))
        return opened

    def seal_frame(self, frame: Any, hidden: frozenset[str]) -> Any:
        """A loop frame (and its parents) with ``items`` and ``item`` sealed where needed."""
        if not isinstance(frame, Mapping):
            return frame
        out = dict(frame)
        for key in ("items", "item"):
            if key in out:
                out[key] = self.seal(out[key], hidden)
        if "parent" in out:
            out["parent"] = self.seal_frame(out["parent"], hidden)
        return out

    def unseal_frame(self, frame: Any, hidden: list[str]) -> tuple[Any, Any]:
        """``(frame unsealed, frame with decoys)``, or ``(frame, None)`` when nothing in it is sealed;
        the unsealed tainted strings are appended to ``hidden``."""
        if not isinstance(frame, Mapping):
            return frame, None
        plain, decoys = dict(frame), {}
        for key in ("items", "item"):
            if is_sealed(plain.get(key)):
                plain[key], decoys[key], tainted = self.unseal(plain[key])
                hidden.extend(tainted)
        if "parent" in frame:
            plain["parent"], parent_decoy = self.unseal_frame(frame["parent"], hidden)
            if parent_decoy is not None:
                decoys["parent"] = parent_decoy
        return (plain, {**plain, **decoys}) if decoys else (frame, None)


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
    for text in (s for s in strings_in(value) if "{{" in s):
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
