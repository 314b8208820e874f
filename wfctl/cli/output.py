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


def fitted_table(columns: list[tuple[str, float]], rows: list[list[str]], flexible: dict[str, int],
                 width: int):
    """A borderless table of ``rows`` (cells in Rich markup, one line each) that fits ``width`` columns
    without wrapping a cell: ``columns`` are (header, priority), the lower priorities kept first; a
    ``flexible`` column shrinks to its minimum width with an ellipsis, every other one is shown whole
    or left out. Returns the table and the headers left out."""
    from rich.table import Table
    from rich.text import Text

    need = [max([len(h)] + [Text.from_markup(row[i]).cell_len for row in rows]) for i, (h, _) in enumerate(columns)]
    widths: dict[int, int] = {}
    for i in sorted(range(len(columns)), key=lambda i: columns[i][1]):
        wanted = min(need[i], flexible.get(columns[i][0], need[i]))
        if sum(widths.values()) + 2 * len(widths) + wanted <= width:
            widths[i] = wanted
    spare = width - sum(widths.values()) - 2 * (len(widths) - 1)
    for i in sorted(widths):  # the flexible columns grow back towards their content, left to right
        if columns[i][0] in flexible:
            grow = max(0, min(spare, need[i] - widths[i]))
            widths[i] += grow
            spare -= grow
    table = Table(box=None, pad_edge=False, header_style="bold")
    shown = sorted(widths)
    for i in shown:
        table.add_column(columns[i][0], no_wrap=True, overflow="ellipsis", width=widths[i])
    for row in rows:
        table.add_row(*(" ".join(row[i].split()) for i in shown))
    return table, [h for i, (h, _) in enumerate(columns) if i not in widths]


def short_time(text: str | None, year: str, seconds: bool = True) -> str:
    """``2026-11-24T12:34:56.789Z`` -> "11-24 12:34:56" (or "11-24 12:34" without ``seconds``) in
    the year ``year``, else "2025-11-24 12:34"; "" for None."""
    if not text:
        return ""
    if text.startswith(year):
        return text[5:10] + " " + text[11:19 if seconds else 16]
    return text[:10] + " " + text[11:16]
