"""Rich end reports for stress runs and for ``wfctl stress compare``.

:func:`render_report` prints a whole run result (the ``wfctl.stress.result/1`` document)
as tables: per scenario the run counts, throughput, latencies, shards, errors,
cross-check, slots, the variant comparison and the thresholds, then one overall line. A
PostgreSQL result also names its backend's servers first, each variant's isolation and hot
rows, and prints a server block per variant (waits, lock waits, the client-vs-server
cross-check; :mod:`wfctl.stress.server_report`).
:func:`render_comparison` prints a baseline comparison (:func:`wfctl.stress.compare.compare`).

Every piece of text that comes from a user or a run (scenario and variant names, error
messages, threshold expressions, cross-check differences) is escaped before it reaches
Rich markup.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table

from wfctl.stress.compare import REGRESSION_EXIT_CODE, Comparison
from wfctl.stress.contention import RETRIES_PER_1000, cause_label, causes_of, retries_label
from wfctl.stress.metrics import as_number
from wfctl.stress.server_report import (
    backend_servers,
    cross_checks,
    database_deltas,
    has_server_figures,
    not_granted,
    own_baselines,
    per_variant_baselines,
    server_of,
    server_settings,
    setting_text,
    shard_server,
    top_waits,
    variant_settings,
    waiting_shards,
)
from wfctl.stress.thresholds import BREACH_EXIT_CODE, metric_unit_kind

MISSING = "-"
NOT_AVAILABLE = "n/a"

LATENCY_COLUMNS = (("p50", "p50"), ("p90", "p90"), ("p95", "p95"), ("p99", "p99"), ("p99_9", "p99.9"), ("max", "max"))
COUNT_ROWS = ("started", "completed", "failed", "canceled", "stuck", "dropped", "late", "rejected")
_BAD_WHEN_NONZERO = {"failed", "stuck", "dropped", "late", "rejected"}


# -- formatting ------------------------------------------------------------------------


def _decimal(value: float) -> str:
    """A float with precision that shrinks as it grows: 0.042, 4.20, 42.0, 4,200."""
    size = abs(value)
    if value == 0:
        return "0"
    if size < 1:
        return f"{value:.3f}"
    if size < 10:
        return f"{value:.2f}"
    if size < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def format_ms(value: object) -> str:
    """Milliseconds without the unit: ``0.042`` -> "0.042", ``1234.5`` -> "1,234"; None -> "-"."""
    number = as_number(value)
    return MISSING if number is None else _decimal(number)


def format_count(value: object) -> str:
    """A count with thousands separators; fractional values keep two decimals."""
    number = as_number(value)
    if number is None:
        return MISSING
    if number.is_integer():
        return f"{int(number):,}"
    return f"{number:,.2f}"


def format_rate(value: object) -> str:
    """Events per second without the unit (a whole-number peak stays whole: 5 -> "5")."""
    number = as_number(value)
    if number is None:
        return MISSING
    if isinstance(value, int):
        return f"{value:,}"
    return _decimal(number)


def format_percent(fraction: object) -> str:
    """A fraction 0..1 as a percentage: 1.0 -> "100%", 0.995 -> "99.5%"."""
    number = as_number(fraction)
    if number is None:
        return MISSING
    text = f"{number * 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def format_bytes(value: object) -> str:
    """Bytes in decimal units: 1_200_000 -> "1.2 MB", 512 -> "512 B"; negatives keep the sign."""
    number = as_number(value)
    if number is None:
        return MISSING
    sign = "-" if number < 0 else ""
    size = abs(number)
    if size < 1000:
        return f"{sign}{int(size)} B"
    for unit in ("kB", "MB", "GB", "TB"):
        size /= 1000.0
        if size < 1000 or unit == "TB":
            return f"{sign}{size:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def format_duration(seconds: object) -> str:
    """``12.3`` -> "12.3 s", ``125`` -> "2m 05s"."""
    number = as_number(seconds)
    if number is None:
        return MISSING
    if number < 60:
        return f"{number:.1f} s"
    minutes, secs = divmod(int(round(number)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s"


def format_value(metric: str, value: object) -> str:
    """``value`` of ``metric`` in the metric's unit (see :func:`metric_unit_kind`); None -> "n/a"."""
    if as_number(value) is None:
        return NOT_AVAILABLE
    kind = metric_unit_kind(metric)
    if kind == "ms":
        return f"{format_ms(value)} ms"
    if kind == "rate":
        return f"{format_rate(value)}/s"
    if kind == "fraction":
        return format_percent(value)
    if kind == "seconds":
        return format_duration(value)
    if metric.endswith("_bytes"):
        return format_bytes(value)
    if metric.endswith("_ms"):
        return f"{format_ms(value)} ms"
    return format_count(value)


def format_seconds(value: object) -> str:
    """Seconds with the unit, small values kept: 0.042 -> "0.042 s", 1.25 -> "1.25 s"; None -> "-"."""
    number = as_number(value)
    return MISSING if number is None else f"{_decimal(number)} s"


def format_ratio(ratio: object) -> str:
    number = as_number(ratio)
    return NOT_AVAILABLE if number is None else f"×{number:.2f}"


def _pass_fail(passed: object) -> str:
    return "[green]PASS[/green]" if passed else "[red]FAIL[/red]"


# -- the run report --------------------------------------------------------------------


def _variant_name(variant: Mapping[str, Any], index: int) -> str:
    name = variant.get("name")
    return str(name) if name not in (None, "") else f"variant {index + 1}"


def _metrics(variant: Mapping[str, Any]) -> Mapping[str, Any]:
    metrics = variant.get("metrics")
    return metrics if isinstance(metrics, Mapping) else {}


def _header(name: str) -> str:
    """A variant name as a column header, broken after its last ``/`` (``4sh/exec/`` over ``hot``)."""
    head, sep, tail = name.rpartition("/")
    return escape(f"{head}{sep}\n{tail}" if sep else name)


def _variant_table(title: str, names: Sequence[str], first_header: str) -> Table:
    table = Table(title=title, title_justify="left", show_edge=True)
    table.add_column(first_header, style="bold", overflow="fold")
    for name in names:
        table.add_column(_header(name) if len(names) > 1 else "value", justify="right", overflow="fold")
    return table


def _counts_table(variants: Sequence[Mapping[str, Any]], names: Sequence[str]) -> Table:
    table = _variant_table("runs", names, "count")
    for key in COUNT_ROWS:
        cells = []
        for variant in variants:
            value = _metrics(variant).get(key)
            text = format_count(value)
            if key in _BAD_WHEN_NONZERO and (as_number(value) or 0) > 0:
                text = f"[red]{text}[/red]"
            cells.append(text)
        table.add_row(key, *cells)
    table.add_row("success rate", *(format_percent(_metrics(v).get("success_rate")) for v in variants))
    return table


def _throughput_table(variants: Sequence[Mapping[str, Any]], names: Sequence[str]) -> Table:
    table = _variant_table("throughput", names, "rate")
    rows = [
        ("completions/s (first start to last completion)", "completions.rate"),
        ("peak completions/s", "completions.peak_rate"),
        ("starts/s (first start to last start)", "starts.rate"),
    ]
    if any(as_number(_metrics(v).get("starts.target_rate")) is not None for v in variants):
        rows.append(("target starts/s", "starts.target_rate"))
    for label, key in rows:
        table.add_row(label, *(format_rate(_metrics(v).get(key)) for v in variants))
    return table


def _step_types(variants: Iterable[Mapping[str, Any]]) -> list[str]:
    types: set[str] = set()
    for variant in variants:
        for key in _metrics(variant):
            parts = key.split(".")
            if len(parts) == 3 and parts[0] == "step_latency":
                types.add(parts[1])
    return sorted(types)


def _latency_label(base: str) -> str:
    """``start``, ``e2e``, ``fire lag``, ``step <type>``: short enough for 80 columns."""
    if base.startswith("step_latency."):
        return "step " + base.split(".", 1)[1]
    return {"start_latency": "start", "e2e_latency": "e2e", "fire_lag": "fire lag"}.get(base, base)


#: Below this console width the long tables keep only their main columns (CI logs are 80 wide).
WIDE_CONSOLE = 110
_NARROW_LATENCY = ("p50", "p95", "p99", "max")


def _latency_table(variants: Sequence[Mapping[str, Any]], names: Sequence[str], wide: bool = True) -> Table:
    several = len(variants) > 1
    table = Table(title="latency (ms)", title_justify="left")
    table.add_column("metric", style="bold", no_wrap=True)
    if several:
        table.add_column("variant", no_wrap=True)
    if wide:
        table.add_column("count", justify="right", no_wrap=True)
    columns = [(stat, header) for stat, header in LATENCY_COLUMNS if wide or stat in _NARROW_LATENCY]
    for _, header in columns:
        table.add_column(header, justify="right", no_wrap=True)
    bases = ["start_latency", "e2e_latency"]
    if any((as_number(_metrics(v).get("fire_lag.count")) or 0) > 0 for v in variants):
        bases.append("fire_lag")
    bases += [f"step_latency.{t}" for t in _step_types(variants)]
    for base in bases:
        for i, (variant, name) in enumerate(zip(variants, names)):
            metrics = _metrics(variant)
            cells = [format_count(metrics.get(f"{base}.count"))] if wide else []
            cells += [format_ms(metrics.get(f"{base}.{stat}")) for stat, _ in columns]
            label = escape(_latency_label(base)) if i == 0 or not several else ""
            if several:
                table.add_row(label, escape(name), *cells, end_section=i == len(variants) - 1)
            else:
                table.add_row(label, *cells)
    return table


def _unfinished(by_status: object) -> int | None:
    if not isinstance(by_status, Mapping):
        return None
    return sum(int(by_status.get(status) or 0) for status in ("pending", "running"))


def _shards_table(variants: Sequence[Mapping[str, Any]], names: Sequence[str], wide: bool = True) -> Table | None:
    several = len(variants) > 1
    rows = []
    for variant, name in zip(variants, names):
        shards = variant.get("shards")
        for shard in shards if isinstance(shards, list) else []:
            if isinstance(shard, Mapping):
                rows.append((name, shard))
    if not rows:
        return None
    table = Table(title="shards", title_justify="left")
    if several:
        table.add_column("variant", no_wrap=True)
    causes = sorted({c for _, shard in rows if isinstance(shard.get("retries"), Mapping) for c in shard["retries"]})
    retries = retries_label(causes).replace(" (", "\n(")  # "retries" over "(lock busy)"
    headers = ["shard", "runs", "unfinished", "failed", "queue", retries, "wait ms", "transactions",
               "size", "growth"] if wide else ["shard", "runs", retries, "wait ms", "size", "growth"]
    for header in headers:  # a by-cause breakdown may wrap
        table.add_column(header, justify="right", no_wrap=header not in (retries, "wait ms"))
    for name, shard in rows:
        by_status = shard.get("by_status")
        cells = {
            "shard": escape(str(shard.get("shard", MISSING))),
            "runs": format_count(shard.get("runs")),
            "unfinished": format_count(_unfinished(by_status)),
            "failed": format_count(by_status.get("failed", 0) if isinstance(by_status, Mapping) else None),
            "queue": format_count(shard.get("queue_depth")),
            retries: _by_cause(shard.get("retries"), format_count),
            "wait ms": _by_cause(shard.get("wait_ms"), format_ms),
            "transactions": format_count(shard.get("transactions")),
            "size": format_bytes(shard.get("size_bytes")),
            "growth": format_bytes(shard.get("file_growth_bytes")),
        }
        table.add_row(*([escape(name)] if several else []), *(cells[h] for h in headers))
    return table


def _by_cause(counts: object, show) -> str:
    """A by-cause figure's total, then one line per cause when more than one cause has some."""
    if not isinstance(counts, Mapping):
        return MISSING
    values = {cause: as_number(v) or 0.0 for cause, v in counts.items()}
    lines = [show(sum(values.values()))]
    some = {cause: v for cause, v in values.items() if v}
    if len(some) > 1:
        lines += [f"[dim]{escape(cause_label(cause))} {show(v)}[/dim]" for cause, v in some.items()]
    return "\n".join(lines)


def _errors_table(variants: Sequence[Mapping[str, Any]], names: Sequence[str]) -> Table | None:
    several = len(variants) > 1
    rows = []
    for variant, name in zip(variants, names):
        for error in variant.get("errors") or []:
            if isinstance(error, Mapping):
                rows.append((name, str(error.get("message", "")), error.get("count")))
    if not rows:
        return None
    table = Table(title="errors", title_justify="left")
    if several:
        table.add_column("variant", overflow="fold")
    table.add_column("message", style="red", overflow="fold")
    table.add_column("count", justify="right", overflow="fold")
    for name, message, count in rows:
        table.add_row(*([escape(name)] if several else []), escape(message), format_count(count))
    return table


def _difference_text(difference: object) -> str:
    if isinstance(difference, Mapping):
        return ", ".join(f"{k}={v}" for k, v in difference.items())
    return str(difference)


def _render_crosscheck(console: Any, variants: Sequence[Mapping[str, Any]], names: Sequence[str]) -> None:
    several = len(variants) > 1
    for variant, name in zip(variants, names):
        check = variant.get("crosscheck")
        if not isinstance(check, Mapping):
            continue
        prefix = f"{escape(name)}: " if several else ""
        differences = check.get("differences") or []
        if check.get("ok", not differences) and not differences:
            console.print(f"{prefix}[green]cross-check OK: the shards agree[/green]")
            continue
        console.print(f"{prefix}[red]cross-check FAILED: {len(differences)} difference(s)[/red]")
        for difference in differences:
            console.print(f"  [red]{escape(_difference_text(difference))}[/red]")


def _comparison_table(scenario: Mapping[str, Any], names: Sequence[str]) -> Table | None:
    comparison = scenario.get("comparison")
    if not isinstance(comparison, Mapping) or not comparison.get("rows"):
        return None
    baseline = str(comparison.get("baseline") or "")
    columns = list(names)
    for row in comparison["rows"]:
        for name in (row.get("values") or {}):
            if name not in columns:
                columns.append(name)
    own = own_baselines(comparison, columns)
    per_variant = per_variant_baselines(comparison)
    if per_variant:
        title = "comparison (each ratio vs the variant's own baseline, named under its header; =1: a baseline)"
    else:
        title = f"comparison (ratio vs baseline: {escape(baseline)})"
    table = Table(title=title, title_justify="left")
    table.add_column("metric", style="bold", overflow="fold")
    for name in columns:
        if own[name] == name:
            header = _header(name) + " [dim]=1[/dim]"
        elif per_variant:
            header = _header(name) + f"\n[dim]vs {escape(own[name])}[/dim]"
        else:
            header = _header(name)
        table.add_column(header, justify="right", overflow="fold")
    for row in comparison["rows"]:
        metric = str(row.get("metric", ""))
        values = row.get("values") or {}
        ratios = row.get("ratios") or {}
        ratio_spread = row.get("ratio_spread") or {}
        better = row.get("higher_is_better")
        cells = []
        for name in columns:
            if name not in values and name not in ratios:
                cells.append(MISSING)
                continue
            ratio = as_number(ratios.get(name))
            ratio_text = format_ratio(ratio)
            if own[name] != name and ratio is not None and better is not None and ratio != 1.0:
                good = (ratio > 1.0) == bool(better)
                colour = "green" if good else "red"
                ratio_text = f"[{colour}]{ratio_text}[/{colour}]"
            cells.append(f"{format_value(metric, values.get(name))}  {ratio_text}"
                         + (_ratio_range(ratio_spread.get(name)) if own[name] != name else ""))
        table.add_row(escape(str(row.get("label") or metric)), *cells)
    return table


def _ratio_range(spread: object) -> str:
    """`` (1.20-1.50)``: the spread of a ratio over the repetitions ("" without repetitions)."""
    if not isinstance(spread, Mapping) or as_number(spread.get("min")) is None:
        return ""
    return f" [dim]({spread['min']:.2f}–{spread['max']:.2f})[/dim]"


#: The figures the repetitions table shows (median and spread; the JSON has every figure's).
REPEAT_ROWS = (
    ("completions/s", "completions.rate"), ("starts/s", "starts.rate"), ("start p50", "start_latency.p50"),
    ("start p99", "start_latency.p99"), ("e2e p50", "e2e_latency.p50"), ("e2e p99", "e2e_latency.p99"),
    ("fire lag p99", "fire_lag.p99"), ("failed", "failed"), ("stuck", "stuck"),
    ("retries per 1,000 starts", RETRIES_PER_1000), ("time", "duration_s"),
)


def _repeats_table(variants: Sequence[Mapping[str, Any]], names: Sequence[str]) -> Table | None:
    """Median and spread (min–max) over the repetitions of the headline figures, per variant."""
    counts = [v["repeats"].get("count") for v in variants if isinstance(v.get("repeats"), Mapping)]
    if not counts:
        return None
    table = _variant_table(f"median (min–max) over {max(counts)} repetitions", names, "figure")
    causes = causes_of(m for v in variants for m in _metrics(v))
    for label, metric in REPEAT_ROWS:
        if metric == RETRIES_PER_1000:
            label = f"{retries_label(causes)} per 1,000 starts"
        cells, shown = [], False
        for variant in variants:
            value = _metrics(variant).get(metric)
            repeats = variant.get("repeats")
            spread = (repeats.get("spread") or {}).get(metric) if isinstance(repeats, Mapping) else None
            shown = shown or as_number(value) is not None
            text = format_value(metric, value)
            if isinstance(spread, Mapping) and as_number(spread.get("min")) is not None:
                text += f"\n[dim]({format_value(metric, spread['min'])}–{format_value(metric, spread['max'])})[/dim]"
            cells.append(text)
        if shown:
            table.add_row(label, *cells)
    return table


def machine_line(machine: object, markup: bool = True) -> str | None:
    """One line on the machine's load during a variant: CPU busy, this run's share, processes vs
    cores, and SATURATED when the figures are CPU-bound (None without a measurement); Rich
    markup unless ``markup`` is False."""
    if not isinstance(machine, Mapping) or as_number(machine.get("cpu_busy")) is None:
        return None
    text = f"CPU {format_percent(machine['cpu_busy'])} busy"
    if as_number(machine.get("cpu_busy_peak")) is not None:
        text += f" (peak {format_percent(machine['cpu_busy_peak'])})"
    if as_number(machine.get("own_cpu")) is not None:
        text += f", this run {format_percent(machine['own_cpu'])}"
    text += f"; {machine.get('processes')} processes on {machine.get('cpus')} cores"
    runs = machine.get("saturated_runs")
    if machine.get("saturated"):
        which = f" in {runs} repetition(s)" if isinstance(runs, int) else ""
        warning = f"SATURATED{which}: throughput and latency are CPU-bound here, not only contention-bound"
        return f"{text}  [bold yellow]{warning}[/bold yellow]" if markup else f"{text}. {warning}"
    return text


def _render_machine(console: Any, variants: Sequence[Mapping[str, Any]], names: Sequence[str]) -> None:
    for variant, name in zip(variants, names):
        line = machine_line(variant.get("machine"))
        if line is not None:
            console.print(f"machine during {escape(name)}: {line}")


def _settings_table(variants: Sequence[Mapping[str, Any]], names: Sequence[str]) -> Table | None:
    """Isolation, hot rows and servers per variant (PostgreSQL); None when no variant has them."""
    settings = [dict(variant_settings(v)) for v in variants]
    keys = [k for k in ("isolation", "hot rows", "servers") if any(k in s for s in settings)]
    if not keys:
        return None
    table = _variant_table("variant settings", names, "setting")
    for key in keys:
        cells = [MISSING if key not in s else ("yes" if s[key] else "no") if key == "hot rows" else escape(str(s[key]))
                 for s in settings]
        table.add_row(key, *cells)
    return table


def _render_backend(console: Any, result: Mapping[str, Any]) -> None:
    """The backend and its servers, when the result names servers (PostgreSQL)."""
    found = backend_servers(result)
    if found is None:
        return
    name, servers = found
    console.print(f"backend: [bold]{escape(name)}[/bold], {len(servers)} server{'s' if len(servers) != 1 else ''}")
    for server in servers:
        settings = ", ".join(f"{key} {value}" for key, value in server_settings(server))
        console.print(f"  {escape(str(server.get('server', MISSING)))}" + (f": {escape(settings)}" if settings else ""))


def _cross_check_line(item: Mapping[str, Any]) -> str:
    """One client-vs-server cross-check, dim when they agree, red when they do not."""
    what = escape(str(item.get("what", "")))
    text = (f"client vs server, {what}: client {format_count(item.get('client'))}, "
            f"server {format_count(item.get('server'))} (tolerance {format_count(item.get('tolerance'))})")
    note = f"; {escape(str(item['note']))}" if item.get("note") else ""
    if item.get("agrees"):
        return f"  [dim]{text}: agree{note}[/dim]"
    return f"  [red]{text}: DISAGREE{note}[/red]"


def _server_lines(variant: Mapping[str, Any]) -> list[str]:
    """A variant's server block: totals, the shards that waited longest, the cross-check."""
    server, metrics = server_of(variant), _metrics(variant)
    totals = [f"lock waits {format_value('server.lock_waits', metrics.get('server.lock_waits'))} "
              f"({format_seconds(metrics.get('server.lock_wait_s'))})",
              f"rollbacks {format_value('server.rollbacks', metrics.get('server.rollbacks'))}",
              f"deadlocks {format_value('server.deadlocks', metrics.get('server.deadlocks'))}",
              f"WAL {format_value('server.wal_bytes', metrics.get('server.wal_bytes'))}"]
    sampled = ""
    if as_number(server.get("samples")) is not None:
        every = as_number(server.get("interval_s"))
        sampled = f"; {format_count(server['samples'])} samples" + (f" every {every * 1000:g} ms" if every else "")
    repeats = variant.get("repeats")
    if isinstance(repeats, Mapping) and repeats.get("representative"):
        totals[0] = f"medians: {totals[0]}"
        sampled += f"; shards and cross-check: repetition {repeats['representative']}"
    lines = [", ".join(totals) + sampled]
    for delta in database_deltas(variant):
        if delta.get("shared"):
            lines.append(f"  [dim]{escape(str(delta.get('server', MISSING)))}: shared with other sessions during "
                         "the run, its counts include theirs[/dim]")
    shards, count = waiting_shards(variant)
    for shard in shards:
        key = str(shard.get("shard", MISSING))
        figures = shard_server(shard)
        waits = ", ".join(f"{escape(event)} {format_seconds(seconds)}"
                          for event, seconds in top_waits(figures.get("waits")))
        text = (f"  shard {escape(key)}: {waits or 'no waits'}; lock waits {format_count(figures.get('lock_waits'))} "
                f"({format_seconds(figures.get('lock_wait_s'))})")
        locks = not_granted(variant, key)
        if as_number(locks.get("max")) is not None:
            text += f", not granted max {format_count(locks['max'])}"
        lines.append(text)
    if count > len(shards):
        lines.append(f"  [dim]{count - len(shards)} more shards waited less[/dim]")
    lines += [_cross_check_line(item) for item in cross_checks(variant)]
    return lines


def _render_server(console: Any, variants: Sequence[Mapping[str, Any]], names: Sequence[str]) -> None:
    for variant, name in zip(variants, names):
        if has_server_figures(variant):
            lines = _server_lines(variant)
            console.print(f"server during {escape(name)}: {lines[0]}")
            for line in lines[1:]:
                console.print(line)


def _thresholds_table(scenario: Mapping[str, Any]) -> Table | None:
    thresholds = scenario.get("thresholds") or []
    if not thresholds:
        return None
    table = Table(title="thresholds", title_justify="left")
    table.add_column("threshold", overflow="fold")
    table.add_column("variant", overflow="fold")
    table.add_column("actual", justify="right", overflow="fold")
    table.add_column("result", overflow="fold")
    for item in thresholds:
        metric = str(item.get("metric", ""))
        table.add_row(
            escape(str(item.get("expression", metric))),
            escape(str(item.get("variant") or MISSING)),
            format_value(metric, item.get("value")),
            _pass_fail(item.get("passed")),
        )
    return table


def _schedule_lead(variants: Sequence[Mapping[str, Any]], names: Sequence[str]) -> Table:
    table = Table(title="schedule slots and fire lag", title_justify="left")
    several = len(variants) > 1
    if several:
        table.add_column("variant", overflow="fold")
    for header in ("expected", "fired", "duplicates", "missed", "fire lag p50", "p99", "max"):
        table.add_column(header, justify="right", overflow="fold")
    for variant, name in zip(variants, names):
        slots = variant.get("slots") if isinstance(variant.get("slots"), Mapping) else {}
        metrics = _metrics(variant)
        cells = []
        for key in ("expected", "fired", "duplicates", "missed"):
            value = slots.get(key, metrics.get(f"slots.{key}"))
            text = format_count(value)
            cells.append(f"[red]{text}[/red]" if key in ("duplicates", "missed") and (as_number(value) or 0) > 0 else text)
        cells += [format_value(f"fire_lag.{stat}", metrics.get(f"fire_lag.{stat}")) for stat in ("p50", "p99", "max")]
        table.add_row(*([escape(name)] if several else []), *cells)
    return table


def _rate_lead(variants: Sequence[Mapping[str, Any]], names: Sequence[str]) -> Table:
    table = _variant_table("arrivals: target vs achieved", names, "figure")
    target = [as_number(_metrics(v).get("starts.target_rate")) for v in variants]
    achieved = [as_number(_metrics(v).get("starts.rate")) for v in variants]
    table.add_row("target starts/s", *(format_value("starts.rate", t) for t in target))
    table.add_row("achieved starts/s", *(format_value("starts.rate", a) for a in achieved))
    table.add_row("achieved of target", *(format_percent(a / t) if a is not None and t else MISSING
                                          for a, t in zip(achieved, target)))
    table.add_row("completions/s", *(format_value("completions.rate", _metrics(v).get("completions.rate"))
                                     for v in variants))
    for key in ("late", "dropped"):
        values = [_metrics(v).get(key) for v in variants]
        table.add_row(key, *(f"[red]{format_count(x)}[/red]" if (as_number(x) or 0) > 0 else format_count(x)
                             for x in values))
    table.add_row("e2e p99", *(format_value("e2e_latency.p99", _metrics(v).get("e2e_latency.p99")) for v in variants))
    return table


def _payload_lead(scenario: Mapping[str, Any], variants: Sequence[Mapping[str, Any]], names: Sequence[str]) -> Table:
    table = _variant_table("payloads: bytes stored and rejected", names, "figure")
    size = ((scenario.get("settings") or {}).get("input") or {}).get("size_bytes")
    table.add_row("input size per start", *(format_bytes(size) for _ in variants))
    table.add_row("runs started", *(format_count(_metrics(v).get("started")) for v in variants))
    table.add_row("bytes stored", *(format_bytes(_metrics(v).get("stored_bytes")) for v in variants))
    table.add_row("shard growth", *(format_bytes(_metrics(v).get("file_growth_bytes")) for v in variants))
    table.add_row("starts rejected", *(format_count(_metrics(v).get("rejected")) for v in variants))
    return table


def _steps_lead(variants: Sequence[Mapping[str, Any]], names: Sequence[str]) -> Table | None:
    types = _step_types(variants)
    if not types:
        return None
    several = len(variants) > 1
    table = Table(title="step latency by type (ms)", title_justify="left")
    table.add_column("step type", style="bold", no_wrap=True)
    if several:
        table.add_column("variant", no_wrap=True)
    for header in ("steps", "p50", "p95", "p99", "max"):
        table.add_column(header, justify="right", no_wrap=True)
    for step_type in types:
        for i, (variant, name) in enumerate(zip(variants, names)):
            metrics = _metrics(variant)
            base = f"step_latency.{step_type}"
            cells = [format_count(metrics.get(f"{base}.count"))]
            cells += [format_ms(metrics.get(f"{base}.{stat}")) for stat in ("p50", "p95", "p99", "max")]
            label = escape(step_type) if i == 0 else ""
            table.add_row(label, *([escape(name)] if several else []), *cells)
    return table


def _lead_tables(scenario: Mapping[str, Any], variants: Sequence[Mapping[str, Any]],
                 names: Sequence[str]) -> list[Table]:
    """What the scenario exists to show, printed before everything else."""
    settings = scenario.get("settings") if isinstance(scenario.get("settings"), Mapping) else {}
    model = (settings.get("workload") or {}).get("model")
    generator = (settings.get("input") or {}).get("generator")
    tables: list[Table | None] = [_comparison_table(scenario, names)]
    if variants and (model == "scheduled" or any(v.get("slots") for v in variants)):
        tables.append(_schedule_lead(variants, names))
    if variants and model == "open":
        tables.append(_rate_lead(variants, names))
    if variants and generator == "sized":
        tables.append(_payload_lead(scenario, variants, names))
    if variants and generator == "loops":
        tables.append(_steps_lead(variants, names))
    return [t for t in tables if t is not None]


def _render_scenario(console: Any, scenario: Mapping[str, Any]) -> None:
    name = str(scenario.get("name", "scenario"))
    mode = "smoke" if scenario.get("smoke") else "full"
    console.print()
    console.rule(
        f"[bold]{escape(name)}[/bold]  {mode}  {format_duration(scenario.get('duration_s'))}  "
        f"{_pass_fail(scenario.get('passed'))}",
        align="left",
    )
    variants = [v for v in scenario.get("variants") or [] if isinstance(v, Mapping)]
    names = [_variant_name(v, i) for i, v in enumerate(variants)]
    if len(variants) == 1:
        settings = ", ".join(setting_text(k, v) for k, v in variant_settings(variants[0]))
        console.print(f"variant: [bold]{escape(names[0])}[/bold]" + (f" ({escape(settings)})" if settings else ""))
    for table in _lead_tables(scenario, variants, names):
        console.print(table)
    settings_table = _settings_table(variants, names) if len(variants) > 1 else None
    if settings_table is not None:
        console.print(settings_table)
    if variants:
        console.print(_counts_table(variants, names))
        console.print(_throughput_table(variants, names))
        wide = getattr(console, "width", WIDE_CONSOLE) >= WIDE_CONSOLE
        console.print(_latency_table(variants, names, wide))
        for table in (_shards_table(variants, names, wide), _errors_table(variants, names)):
            if table is not None:
                console.print(table)
        _render_crosscheck(console, variants, names)
        _render_server(console, variants, names)
        repeats = _repeats_table(variants, names)
        if repeats is not None:
            console.print(repeats)
        _render_machine(console, variants, names)
    thresholds = _thresholds_table(scenario)
    if thresholds is not None:
        console.print(thresholds)


def render_report(console: Any, result: Mapping[str, Any], *, verdict: bool = True) -> None:
    """Print the end report of a stress run ``result`` (a ``wfctl.stress.result/1`` dict); the
    last line is the verdict unless ``verdict`` is False (``--compare`` prints it after the comparison)."""
    _render_backend(console, result)
    for scenario in (s for s in result.get("scenarios") or [] if isinstance(s, Mapping)):
        _render_scenario(console, scenario)
    if verdict:
        console.print()
        render_verdict(console, result)


def render_verdict(console: Any, result: Mapping[str, Any], regressed: int = 0,
                   fail_on_regression: float | None = None) -> None:
    """The run's last line: PASS, or FAIL with the thresholds breached (99) or the metrics that
    regressed beyond ``--fail-on-regression`` (98)."""
    checked = breached = 0
    for scenario in (s for s in result.get("scenarios") or [] if isinstance(s, Mapping)):
        for item in scenario.get("thresholds") or []:
            checked += 1
            breached += not item.get("passed")
    if breached:
        noun = "threshold" if breached == 1 else "thresholds"
        console.print(f"[bold red]FAIL: {breached} {noun} breached (exit {BREACH_EXIT_CODE})[/bold red]")
    elif result.get("passed") is False:
        console.print(f"[bold red]FAIL: run failed (exit {escape(str(result.get('exit_code', 1)))})[/bold red]")
    elif regressed and fail_on_regression is not None:
        console.print(f"[bold red]FAIL: {_regressed_text(regressed, fail_on_regression)} "
                      f"(exit {REGRESSION_EXIT_CODE})[/bold red]")
    else:
        console.print(f"[bold green]PASS: all thresholds passed ({checked} checked)[/bold green]")


def _regressed_text(regressed: int, tolerance: float) -> str:
    noun = "metric" if regressed == 1 else "metrics"
    return f"{regressed} {noun} regressed beyond {tolerance:g}% and the noise floors"


# -- wfctl stress compare ------------------------------------------------------------


def _with_range(metric: str, value: object, spread: object) -> str:
    text = format_value(metric, value)
    if spread is not None:
        low, high = spread  # type: ignore[misc]
        text += f"\n[dim]({format_value(metric, low)}–{format_value(metric, high)})[/dim]"
    return text


def render_comparison(
    console: Any,
    rows: Sequence[Comparison],
    baseline_label: str,
    current_label: str,
    tolerance_pct: float | None,
    fail_on_regression: bool | None = None,
) -> int:
    """Print one variant's comparison: metric, baseline, current (with the repetitions' ranges),
    change and a mark: "REGRESSION" when ``fail_on_regression`` (default: a ``tolerance_pct`` was
    given) and the change passed the noise rules (:mod:`wfctl.stress.compare`), else "worse";
    "improved"; or why a change the wrong way is noise. Returns the metrics that got worse."""
    failing = tolerance_pct is not None if fail_on_regression is None else fail_on_regression
    title = "comparison"
    if tolerance_pct is not None:
        title += f" (tolerance {tolerance_pct:g}% and the noise floors)"
    table = Table(title=title, title_justify="left")
    table.add_column("metric", style="bold", overflow="fold")
    table.add_column(f"baseline\n[dim]{escape(baseline_label)}[/dim]", justify="right", overflow="fold")
    table.add_column(f"current\n[dim]{escape(current_label)}[/dim]", justify="right", overflow="fold")
    table.add_column("change", justify="right", overflow="fold")
    table.add_column("", overflow="fold")
    worse = 0
    for row in rows:
        if row.baseline is None and row.current is None:
            continue
        change = NOT_AVAILABLE if row.change_pct is None else f"{row.change_pct:+.1f}%"
        marker = ""
        if row.regression:
            worse += 1
            change = f"[red]{change}[/red]"
            marker = "[bold red]REGRESSION[/bold red]" if failing else "[yellow]worse[/yellow]"
        elif row.improved:
            change = f"[green]{change}[/green]"
            marker = "[green]improved[/green]"
        elif row.note:
            marker = f"[dim]noise: {escape(row.note)}[/dim]"
        elif row.higher_is_better is None:
            change = f"[dim]{change}[/dim]"
        table.add_row(
            escape(row.metric),
            _with_range(row.metric, row.baseline, row.baseline_range),
            _with_range(row.metric, row.current, row.current_range),
            change,
            marker,
        )
    console.print(table)
    if worse and failing:
        noun = "metric" if worse == 1 else "metrics"
        console.print(f"[bold red]{worse} {noun} regressed[/bold red]")
    elif worse:
        noun = "metric" if worse == 1 else "metrics"
        console.print(f"[yellow]{worse} {noun} worse beyond the tolerance and the noise floors "
                      f"(not a failure without --fail-on-regression)[/yellow]")
    else:
        console.print("[green]no regressions (no change beyond the tolerance and the noise floors)[/green]")
    return worse


__all__ = [
    "format_bytes",
    "format_count",
    "format_duration",
    "format_ms",
    "format_percent",
    "format_rate",
    "format_ratio",
    "format_seconds",
    "format_value",
    "machine_line",
    "render_comparison",
    "render_report",
    "render_verdict",
]
