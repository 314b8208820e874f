"""A live progress view for a running stress scenario.

On a terminal :class:`LiveView` animates a small panel with :class:`rich.live.Live`
(4 refreshes a second): the scenario, variant, phase and elapsed time, a progress bar,
the current rates and a compact per-shard table. When the console is not a terminal
(CI logs, pipes) it does not animate: it prints one plain progress line at most every
:data:`PLAIN_INTERVAL_S` seconds and whenever the phase (or scenario / variant) changes.
With ``enabled=False`` it prints nothing.

A snapshot passed to :meth:`LiveView.update` is a dict::

    {"scenario": str, "variant": str, "phase": "starting"|"running"|"draining"|"collecting",
     "elapsed_s": float, "target": int|None, "started": int, "finished": int,
     "unfinished": int, "starts_per_s": float, "completions_per_s": float,
     "dropped": int, "rejected": int,
     "shards": [{"shard": int, "runs": int, "unfinished": int, "queue_depth": int,
                 "retries": {cause: int}, "wait_ms": {cause: float}}]}

Missing keys are shown as zeros / dashes rather than failing: the view must never take
a stress run down.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .contention import retries_label
from .metrics import as_number

REFRESH_PER_SECOND = 4
PLAIN_INTERVAL_S = 5.0


def _int(value: object) -> int:
    return int(as_number(value) or 0)


def _float(value: object) -> float:
    return as_number(value) or 0.0


def _elapsed(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s"


def _target(snapshot: Mapping[str, Any]) -> int | None:
    target = snapshot.get("target")
    if isinstance(target, bool) or not isinstance(target, (int, float)) or target != target or target <= 0:
        return None
    return int(target)


def _shards(snapshot: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    shards = snapshot.get("shards") or []
    return [s for s in shards if isinstance(s, Mapping)]


def _total(by_cause: object) -> float:
    """The sum of a by-cause figure (0 when it is not a mapping)."""
    return sum(_float(v) for v in by_cause.values()) if isinstance(by_cause, Mapping) else 0.0


def _retries_label(shards: list[Mapping[str, Any]]) -> str:
    """"retries (lock busy)" when every shard reports that one cause, else "retries"."""
    causes = {c for s in shards if isinstance(s.get("retries"), Mapping) for c in s["retries"]}
    return retries_label(sorted(causes))


def plain_line(snapshot: Mapping[str, Any]) -> str:
    """One line of progress for logs (no markup, no colour)."""
    finished = _int(snapshot.get("finished"))
    target = _target(snapshot)
    if target is not None:
        pct = min(100.0, finished * 100.0 / target)
        progress = f"finished {finished}/{target} ({pct:.0f}%)"
    else:
        progress = f"finished {finished}"
    parts = [
        f"[{snapshot.get('scenario', '?')} / {snapshot.get('variant', '?')}]",
        str(snapshot.get("phase", "?")),
        _elapsed(_float(snapshot.get("elapsed_s"))),
        progress,
        f"started {_int(snapshot.get('started'))}",
        f"unfinished {_int(snapshot.get('unfinished'))}",
        f"{_float(snapshot.get('starts_per_s')):.1f} starts/s",
        f"{_float(snapshot.get('completions_per_s')):.1f} completions/s",
        f"dropped {_int(snapshot.get('dropped'))}",
        f"rejected {_int(snapshot.get('rejected'))}",
    ]
    shards = _shards(snapshot)
    if shards:
        max_queue = max(_int(s.get("queue_depth")) for s in shards)
        retries = sum(int(_total(s.get("retries"))) for s in shards)
        wait = sum(_total(s.get("wait_ms")) for s in shards)
        parts.append(f"shards {len(shards)}: max queue {max_queue}, {_retries_label(shards)} {retries}, "
                     f"waited {wait:.0f}ms")
    return "  ".join(parts)


def render_snapshot(snapshot: Mapping[str, Any]) -> RenderableType:
    """The animated panel's content for one snapshot."""
    header = Text.from_markup(
        f"[bold]{escape(str(snapshot.get('scenario', '?')))}[/bold] / "
        f"{escape(str(snapshot.get('variant', '?')))}  "
        f"[cyan]{escape(str(snapshot.get('phase', '?')))}[/cyan]  "
        f"{_elapsed(_float(snapshot.get('elapsed_s')))}"
    )
    finished = _int(snapshot.get("finished"))
    target = _target(snapshot)
    bar = ProgressBar(total=float(target) if target is not None else None, completed=finished, width=40)
    if target is not None:
        pct = min(100.0, finished * 100.0 / target)
        counts = f"{finished:,}/{target:,} finished ({pct:.0f}%)"
    else:
        counts = f"{finished:,} finished"
    counts += f"  {_int(snapshot.get('started')):,} started  {_int(snapshot.get('unfinished')):,} unfinished"
    progress = Table.grid(padding=(0, 2))
    progress.add_row(bar, Text(counts))
    dropped, rejected = _int(snapshot.get("dropped")), _int(snapshot.get("rejected"))
    rates = Text.from_markup(
        f"{_float(snapshot.get('starts_per_s')):,.1f} starts/s  "
        f"{_float(snapshot.get('completions_per_s')):,.1f} completions/s  "
        + (f"[red]dropped {dropped:,}[/red]" if dropped else "dropped 0")
        + "  "
        + (f"[red]rejected {rejected:,}[/red]" if rejected else "rejected 0")
    )
    parts: list[RenderableType] = [header, progress, rates]
    shards = _shards(snapshot)
    if shards:
        table = Table(box=None, padding=(0, 1), show_edge=False, header_style="dim")
        for column in ("shard", "runs", "unfinished", "queue", _retries_label(shards), "waited ms"):
            table.add_column(column, justify="right")
        for shard in shards:
            table.add_row(
                escape(str(shard.get("shard", "-"))),
                f"{_int(shard.get('runs')):,}",
                f"{_int(shard.get('unfinished')):,}",
                f"{_int(shard.get('queue_depth')):,}",
                f"{int(_total(shard.get('retries'))):,}",
                f"{_total(shard.get('wait_ms')):,.1f}",
            )
        parts.append(table)
    return Group(*parts)


class LiveView:
    """Live progress of a stress run on ``console``; use as a context manager.

    ``enabled=False`` prints nothing. On a non-terminal console the view prints plain
    lines (at most every ``plain_interval_s`` seconds, and on phase changes) instead of
    animating. ``clock`` is for tests.
    """

    def __init__(
        self,
        console: Any,
        *,
        enabled: bool = True,
        plain_interval_s: float = PLAIN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.enabled = enabled
        self.animated = bool(enabled and getattr(console, "is_terminal", False))
        self.plain_interval_s = plain_interval_s
        self._clock = clock
        self._live: Any = None
        self._snapshot: Mapping[str, Any] | None = None
        self._last_plain_at: float | None = None
        self._last_key: tuple[Any, Any, Any] | None = None

    def __enter__(self) -> LiveView:
        if self.animated and self._live is None:
            from rich.live import Live

            initial = render_snapshot(self._snapshot) if self._snapshot is not None else Text("starting…")
            self._live = Live(
                initial,
                console=self.console,
                refresh_per_second=REFRESH_PER_SECOND,
                transient=False,
            )
            self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.__exit__(exc_type, exc, tb)

    def update(self, snapshot: Mapping[str, Any]) -> None:
        """Show ``snapshot`` (animated) or maybe print it as a plain line."""
        if not self.enabled:
            return
        self._snapshot = snapshot
        if self.animated:
            if self._live is not None:
                self._live.update(render_snapshot(snapshot))
            return
        now = self._clock()
        key = (snapshot.get("scenario"), snapshot.get("variant"), snapshot.get("phase"))
        due = self._last_plain_at is None or now - self._last_plain_at >= self.plain_interval_s
        if key != self._last_key or due:
            self._last_key = key
            self._last_plain_at = now
            self.console.print(plain_line(snapshot), markup=False, highlight=False, soft_wrap=True)


__all__ = ["LiveView", "PLAIN_INTERVAL_S", "plain_line", "render_snapshot"]
