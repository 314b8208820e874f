"""Loop steps: entering, advancing and leaving loops, nested loops, and continueOnError recovery.

The loop variable follows tale: ``{ownerStepSlug, items, state{currentIndex, totalItems,
isComplete, iterations}, item, index, parent?}``. wfctl adds ``itemVariable``/``indexVariable``
(aliases set as top-level variables) and ``state.errors`` (items whose body failed under
``continueOnError``).
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import StepError

DEFAULT_MAX_ITERATIONS = 1000


def in_progress(loop: Any) -> bool:
    """True when ``loop`` is a loop variable whose loop has not finished."""
    return isinstance(loop, Mapping) and isinstance(loop.get("state"), Mapping) and not loop["state"].get("isComplete")


def enclosing_loops(loop: Any):
    """The unfinished loops around the current step, innermost first."""
    while in_progress(loop):
        yield loop
        loop = loop.get("parent")


def _frame(owner: str, items: list, state: dict, item: Any, index: int, parent: Any, config: Mapping) -> dict:
    frame = {"ownerStepSlug": owner, "items": items, "state": state, "item": item, "index": index}
    if parent is not None:
        frame["parent"] = parent
    for key in ("itemVariable", "indexVariable"):
        name = config.get(key)
        if isinstance(name, str) and name:
            frame[key] = name
    return frame


def _max_iterations(slug: str, config: Mapping) -> int:
    value = config.get("maxIterations", DEFAULT_MAX_ITERATIONS)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise StepError(f"loop '{slug}': maxIterations must be a positive integer, got {value!r}")
    return value


def run_loop(slug: str, config: Mapping, items: Any, current_loop: Any) -> tuple[str, dict, dict]:
    """Execute loop step ``slug``. Returns (port, new loop variable, step output data).

    ``items`` is the rendered ``config.items`` (used only when the loop starts).
    """
    if in_progress(current_loop) and current_loop.get("ownerStepSlug") == slug:
        return _advance(slug, config, current_loop)
    if not isinstance(items, list):
        kind = "null" if items is None else type(items).__name__
        raise StepError(f"loop '{slug}': items must resolve to an array, got {kind}")
    if not items:
        raise StepError(f"loop '{slug}': items resolved to an empty array")
    limit = _max_iterations(slug, config)
    if len(items) > limit:
        raise StepError(f"loop '{slug}': {len(items)} items exceed maxIterations {limit}")
    parent = current_loop if in_progress(current_loop) else None
    state = {"currentIndex": 0, "totalItems": len(items), "isComplete": False, "iterations": 0}
    frame = _frame(slug, items, state, items[0], 0, parent, config)
    return "loop", frame, {"state": state, "item": items[0]}


def _advance(slug: str, config: Mapping, loop: Mapping) -> tuple[str, dict, dict]:
    items = loop.get("items") or []
    prev = loop["state"]
    nxt = prev.get("currentIndex", 0) + 1
    done = nxt >= len(items)
    state = {**prev, "currentIndex": nxt, "totalItems": len(items), "isComplete": done,
             "iterations": prev.get("iterations", 0) + 1}
    parent = loop.get("parent")
    if done:
        finished = _frame(slug, items, state, None, -1, parent, config)
        # As tale does: a finished inner loop gives the context back to its parent.
        restored = parent if in_progress(parent) else finished
        return "done", restored, {"state": state, "item": None}
    item = items[nxt]
    return "loop", _frame(slug, items, state, item, nxt, parent, config), {"state": state, "item": item}


def apply_loop_aliases(variables: dict, old_loop: Any, new_loop: Any) -> None:
    """Point ``itemVariable``/``indexVariable`` aliases at ``new_loop`` (``variables`` is a fresh copy).

    Aliases of the loops in ``old_loop``'s chain are removed first, then set for every unfinished
    loop of ``new_loop``'s chain.
    """
    if isinstance(old_loop, Mapping):
        for frame in _chain(old_loop):
            for key in ("itemVariable", "indexVariable"):
                name = frame.get(key)
                if name:
                    variables.pop(name, None)
    if isinstance(new_loop, Mapping):
        # Only unfinished loops have aliases; outer loops first so an inner alias of the same name wins.
        for frame in reversed(list(enclosing_loops(new_loop))):
            if frame.get("itemVariable"):
                variables[frame["itemVariable"]] = frame.get("item")
            if frame.get("indexVariable"):
                variables[frame["indexVariable"]] = frame.get("index")


def _chain(loop: Mapping):
    while isinstance(loop, Mapping):
        yield loop
        loop = loop.get("parent")


def recovery_loop(loop: Any, loop_configs: Mapping[str, Mapping]) -> dict | None:
    """The innermost enclosing loop whose step has ``continueOnError: true``, if any."""
    for frame in enclosing_loops(loop):
        if loop_configs.get(frame.get("ownerStepSlug"), {}).get("continueOnError") is True:
            return frame
    return None


def record_item_error(frame: Mapping, step_slug: str, error: str) -> dict:
    """``frame`` with the current item's failure appended to ``state.errors``."""
    state = frame["state"]
    errors = list(state.get("errors", ()))
    errors.append({"index": frame.get("index"), "step": step_slug, "error": error})
    return {**frame, "state": {**state, "errors": errors}}
