"""Helpers shared by the commands: the engine of this invocation, JSON output, Rich tables."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any

import typer


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON to stdout; NaN and +-Infinity print as null (as ``JSON.stringify``)."""
    from ..store.payload import dumps

    sys.stdout.write(dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def print_json_streamed(data: dict, key: str) -> None:
    """Write ``data`` as indented JSON to stdout like :func:`print_json`, with ``data[key]`` (a
    list or an iterator, written last) written item by item as it is read."""
    from ..store.payload import dumps

    dump = functools.partial(dumps, indent=2, ensure_ascii=False, default=str)
    head = dump({k: v for k, v in data.items() if k != key})
    write = sys.stdout.write
    write(head[:-1].rstrip() + ("," if len(head) > 2 else "") + f"\n  {dump(key)}: [")
    count = 0
    for count, item in enumerate(data[key], 1):
        write(("," if count > 1 else "") + "\n    " + dump(item).replace("\n", "\n    "))
    write("\n  ]\n}\n" if count else "]\n}\n")


def console(stderr: bool = False):
    """A Rich console (imported lazily)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


ALLOW_MODULE_HELP = ("Allow definitions to call functions of this module (and its submodules) as "
                     "module:function actions (repeatable; also $WFCTL_ALLOW_MODULES, allow_modules in wfctl.json).")


def engine(ctx: typer.Context, stubs=None, allow_modules=(), create: bool = False):
    """The Engine over this invocation's data directory (``--data-dir``, ``$WFCTL_DATA_DIR``, ``./.wfctl``);
    ``stubs``: a stubs file answering tale platform actions in steps this process runs; ``allow_modules``:
    ``--allow-module`` prefixes; ``create``: create a missing directory (only commands that store
    something: ``start``, ``defs apply``), else a missing one is refused."""
    from ..engine import Engine

    root = ctx.find_root()
    obj = root.obj if isinstance(root.obj, dict) else {}
    if obj.get("engine") is None:
        factory = None
        if stubs is not None:
            from ..engine.factories import with_stubs

            factory = with_stubs(stubs)
        obj["engine"] = Engine(obj.get("data_dir"), interpreter_factory=factory, allow_modules=allow_modules or (),
                               create=create)
        root.obj = obj
        root.call_on_close(obj["engine"].close)
    return obj["engine"]


def confirm(question: str, yes: bool) -> None:
    """Ask ``question`` unless ``yes``; without a terminal to ask on, refuse with a clear error."""
    from ..errors import InputError

    if yes:
        return
    if not sys.stdin.isatty():
        raise InputError(f"{question} (refusing without --yes: no terminal to confirm on)")
    if not typer.confirm(question, default=False):
        raise typer.Exit(1)


def escape(text: str) -> str:
    """Escape Rich markup in ``text``."""
    from rich.markup import escape as _escape

    return _escape(text)


STATUS_COLOURS = {"completed": "green", "failed": "red", "canceled": "yellow", "running": "cyan", "pending": "white"}


def status_markup(status: str) -> str:
    """A run status coloured for people."""
    colour = STATUS_COLOURS.get(status, "white")
    return f"[{colour}]{status}[/{colour}]"


def short_json(value: Any, width: int = 60) -> str:
    """Compact JSON, cut to ``width`` characters."""
    text = json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"
