"""Render a stress-run result (schema ``wfctl.stress.result/1``) as one HTML page.

The page opens with a summary (verdict, failed thresholds, one line of headline figures per
scenario) and a table of contents. Each scenario then leads with what it exists to show
(fire lag and slots, step latency by type, target vs achieved rate, bytes stored and
rejected, or the side-by-side comparison with a chart of its headline ratios), followed by
its thresholds and one section per variant. A PostgreSQL result adds the backend's servers to
the summary, a chart of conflicts per 1,000 starts to a comparison, and to each variant its
database server's figures, the client-vs-server cross-check and its waits by wait event over
time per shard (:mod:`wfctl.stress.server_report`).

Every number carries its unit; tables stack into label/value lines at phone width so the
page never scrolls sideways. The page is self-contained: styles are inline and the charts
are pygal SVGs embedded inline with their scripts removed, so it renders offline and
references no external script, font, stylesheet or image. Every string taken from the
result is escaped. pygal is imported only when a page is rendered.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from html import escape
from typing import Any

from .contention import (
    RETRIES,
    RETRIES_PER_1000,
    WAIT_MS,
    cause_label,
    causes_of,
    metric_value,
    retries_label,
    split_cause,
)
from .metrics import as_number
from .report import (
    format_bytes,
    format_count,
    format_duration,
    format_ms,
    format_percent,
    format_rate,
    format_seconds,
    machine_line,
)
from .server_report import (
    backend_servers,
    bucket_s,
    chart_series,
    charted_shards,
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
    wait_timeline,
    wal_deltas,
)
from .thresholds import metric_unit_kind

__all__ = ["chart_titles", "render_html"]

_DASH = "\u2014"
_CSS = """
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0 auto;
max-width:1320px;padding:1em 1.5em;overflow-wrap:break-word}
h1{font-size:1.6em;margin:.3em 0}h2{margin-top:2.2em;border-bottom:2px solid #ddd;padding-bottom:.2em}
h3{margin-top:1.6em}h4{margin:.6em 0 .2em;font-size:1em}
table{border-collapse:collapse;margin:.4em 0 1em;max-width:100%}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.cmp{white-space:normal}td.cmp span span{white-space:nowrap}td.better{background:#e3f4e5;color:#1b5e20}td.worse{background:#fde7e7;color:#b71c1c}
.badge{display:inline-block;padding:.1em .6em;border-radius:.8em;color:#fff;font-size:.8em;
font-weight:600;vertical-align:middle}
.pass{background:#2e7d32}.fail{background:#c62828}.na{background:#777}
.muted{color:#666}.error{color:#b71c1c;background:#fdecea}.bad{color:#b71c1c;font-weight:600}
.summary{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;background:#fafafa}
.summary ul{padding-left:1.2em;margin:.3em 0}.summary li{margin:.2em 0}
nav ol{columns:2 18em;padding-left:1.4em}
.lead{border-left:4px solid #1f77b4;padding:.1em 0 .1em 1em;margin:1em 0}.lead figure{max-width:720px}
.grid{display:flex;flex-wrap:wrap;gap:0 2.5em}.grid>div{min-width:0;max-width:100%}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,560px),1fr));gap:0 1.5em}
figure{margin:.5em 0 1.2em;min-width:0}figure svg{display:block;width:100%;height:auto;max-width:900px}
figure svg .plot_title{display:none}
details{margin:.6em 0}summary{cursor:pointer;font-weight:600;font-size:1.1em;margin:.8em 0}
code{overflow-wrap:anywhere}th:first-child{min-width:8em}
@media (max-width:760px){
body{padding:.5em .8em;font-size:14px}.grid{display:block}
table.stack,table.stack tbody,table.stack tr,table.stack td{display:block;width:100%}
table.stack thead{display:none}
table.stack tr{border:1px solid #ddd;margin-bottom:.5em}
table.stack td{border:none;border-bottom:1px solid #eee;display:flex;justify-content:space-between;gap:1em;
text-align:right;white-space:normal}
table.stack td::before{content:attr(data-label);font-weight:600;text-align:left;color:#555}
}
"""
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
_LATENCY_STATS = (("p50", "p50"), ("p95", "p95"), ("p99", "p99"), ("max", "max"))
#: The comparison rows charted as ratios, when present (same unit: ×baseline).
_HEADLINE_RATIOS = ("completions.rate", "start_latency.p99", "e2e_latency.p95", RETRIES_PER_1000)
#: The ratio chart's axis labels of the headline metrics: short, so the chart fits a phone's width.
_SHORT_LABELS = {"completions.rate": "completions/s", "start_latency.p99": "start p99",
                 "e2e_latency.p95": "e2e p95", RETRIES_PER_1000: "retries / 1k starts"}
_KEY_FIGURES = (
    ("runs started", "started"),
    ("completed", "completed"),
    ("failed", "failed"),
    ("stuck", "stuck"),
    ("dropped", "dropped"),
    ("late", "late"),
    ("rejected", "rejected"),
    ("success rate", "success_rate"),
    ("starts/s", "starts.rate"),
    ("completions/s", "completions.rate"),
    ("peak completions/s", "completions.peak_rate"),
    ("start latency p50", "start_latency.p50"),
    ("start latency p99", "start_latency.p99"),
    ("end-to-end latency p50", "e2e_latency.p50"),
    ("end-to-end latency p99", "e2e_latency.p99"),
    ("retries", RETRIES_PER_1000),  # labelled with the cause when there is one (see _key_figures)
    ("waited", WAIT_MS),
    ("stored in shards", "stored_bytes"),
    ("shard growth", "file_growth_bytes"),
)
_BAD_WHEN_NONZERO = {"failed", "stuck", "dropped", "late", "slots.duplicates", "slots.missed"}
#: The contention figures of a comparison's conflicts chart (PostgreSQL), when present: one bar series each.
_CONFLICT_SERIES = (
    ("retries_per_1000.serialization_failure", "conflicts per 1k starts"),
    ("retries_per_1000.deadlock", "deadlocks per 1k starts"),
    ("server.lock_waits_per_1000", "lock waits per 1k starts"),
)
#: The database server's figures of a variant (PostgreSQL), in the order its table lists them.
_SERVER_FIGURES = (
    ("lock waits (distinct waits sampled)", "server.lock_waits"),
    ("lock wait (session-seconds)", "server.lock_wait_s"),
    ("lock waits per 1,000 starts", "server.lock_waits_per_1000"),
    ("rolled-back transactions", "server.rollbacks"),
    ("deadlocks", "server.deadlocks"),
    ("WAL written", "server.wal_bytes"),
    ("samples", "server.samples"),
)


# ---------------------------------------------------------------- values with units


def _unit(metric: str, value: Any) -> str:
    """``value`` of ``metric`` as text with its unit (escaped); None -> a dash."""
    if as_number(value) is None:
        return _DASH
    kind = metric_unit_kind(metric)
    if kind == "ms" or metric.endswith("_ms"):
        return f"{format_ms(value)} ms"
    if kind == "rate" or metric.endswith("_rate") and metric != "success_rate":
        return f"{format_rate(value)}/s"
    if kind == "fraction":
        return format_percent(value)
    if kind == "seconds":
        return _duration(value)
    if metric.endswith("_bytes"):
        return format_bytes(value)
    if split_cause(metric)[0] == RETRIES_PER_1000 or metric.endswith("_per_1000"):
        return f"{format_count(round(float(value), 2))} per 1,000 starts"
    if metric.endswith("_s"):
        return format_seconds(value)
    return format_count(value)


def _duration(seconds: Any) -> str:
    """Seconds as text: sub-second values in ms (0.041 -> "41 ms"), others as format_duration."""
    number = as_number(seconds)
    if number is not None and abs(number) < 1:
        return f"{number * 1000:,.0f} ms"
    return format_duration(seconds)


def _ratio(value: Any) -> str:
    number = as_number(value)
    return "n/a" if number is None else f"\u00d7{number:.2f}"


def _threshold_unit(expression: str) -> str:
    """The unit written in a threshold expression ("ms", "s", "/s", "%" or "")."""
    match = re.search(r"\d\s*(ms|s|/s|%)\s*$", expression)
    return match.group(1) if match else ""


def _in_threshold_unit(metric: str, value: Any, unit: str) -> str:
    """``value`` (in the metric's unit) in the unit the threshold was written in."""
    number = as_number(value)
    if number is None:
        return _DASH
    kind = metric_unit_kind(metric)
    if kind == "ms" and unit == "s":
        return f"{number / 1000:,.4g} s"
    if kind == "seconds" and unit == "ms":
        return f"{number * 1000:,.4g} ms"
    return _unit(metric, value)


def _threshold_limit(expression: str, metric: str) -> str:
    """The limit of a threshold, as written, with the metric's unit when none was written."""
    match = re.search(r"(<=|>=|==|!=|<|>)\s*(\S+(?:\s*(?:ms|s|/s|%))?)\s*$", expression)
    if not match:
        return _DASH
    op, limit = match.groups()
    number = as_number(limit) if not _threshold_unit(expression) else None
    if number is not None and metric_unit_kind(metric) == "fraction":
        return f"{escape(op)} {format_percent(number)}"
    shown = _unit(metric, number) if number is not None else re.sub(r"(\d)\s*(ms|s|/s)$", r"\1 \2", limit)
    return f"{escape(op)} {escape(shown)}"


def _settings_value(key: str, value: Any) -> str:
    last = key.rsplit(".", 1)[-1]
    number = as_number(value)
    if number is None or isinstance(value, bool):
        return _plain(value)
    if last.endswith("_s") or last in ("duration", "late_after", "stuck_after"):
        return format_duration(number)
    if last in ("rate", "target"):
        return f"{format_rate(value)}/s"
    if last.endswith("_bytes"):
        return format_bytes(number)
    return format_count(value)


def _plain(value: Any) -> str:
    if value is None:
        return _DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, dict)):
        return escape(", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict)
                      else ", ".join(str(v) for v in value)) or _DASH
    return escape(str(value))


def _badge(passed: Any) -> str:
    if passed is None:
        return '<span class="badge na">n/a</span>'
    return '<span class="badge pass">PASS</span>' if passed else '<span class="badge fail">FAIL</span>'


def _flag(metric: str, value: Any) -> str:
    """A count shown in red when it is one of the counts that should be zero and is not."""
    text = _unit(metric, value)
    return f'<span class="bad">{text}</span>' if metric in _BAD_WHEN_NONZERO and (as_number(value) or 0) > 0 else text


Cell = str | tuple[str, str]  # HTML, or (HTML, extra td classes)


def _table(headers: list[str], rows: list[list[Cell]], numeric: Collection[int] = ()) -> str:
    """A table that stacks into label/value lines at phone width. ``headers`` are plain text;
    cells are already-escaped HTML, optionally with extra classes."""
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)

    def cell(i: int, c: Cell) -> str:
        html, extra = (c, "") if isinstance(c, str) else c
        classes = " ".join(x for x in ("num" if i in numeric else "", extra) if x)
        label = escape(headers[i]) if i < len(headers) else ""
        return f'<td{f" class={chr(34)}{classes}{chr(34)}" if classes else ""} data-label="{label}">{html}</td>'

    body = "".join("<tr>" + "".join(cell(i, c) for i, c in enumerate(row)) + "</tr>" for row in rows)
    stack = ' class="stack"' if len(headers) > 2 else ""  # two columns fit any width as they are
    return f"<table{stack}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict) and data:
        return [item for k, v in data.items() for item in _flatten(v, f"{prefix}{k}.")]
    return [(prefix[:-1], data)]


def _anchor(name: str) -> str:
    return "s-" + (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "scenario")


# ---------------------------------------------------------------- scenario kinds


def _variants(scenario: Mapping) -> list[dict]:
    return [v for v in scenario.get("variants") or [] if isinstance(v, dict)]


def _metrics(variant: Mapping) -> Mapping:
    metrics = variant.get("metrics")
    return metrics if isinstance(metrics, Mapping) else {}


def _settings(scenario: Mapping, *path: str) -> Any:
    value: Any = scenario.get("settings") or {}
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _step_types(variants: list[dict]) -> list[str]:
    types = {k.split(".")[1] for v in variants for k in _metrics(v) if k.startswith("step_latency.") and k.count(".") == 2}
    return sorted(types)


def _kinds(scenario: Mapping) -> list[str]:
    """What the scenario exists to show, most specific first."""
    variants = _variants(scenario)
    kinds = []
    if _comparison_rows(scenario):
        kinds.append("comparison")
    model = _settings(scenario, "workload", "model")
    if model == "scheduled" or any(v.get("slots") for v in variants):
        kinds.append("schedule")
    if model == "open" or any(as_number(_metrics(v).get("starts.target_rate")) for v in variants):
        kinds.append("rate")
    generator = _settings(scenario, "input", "generator")
    if generator == "sized":
        kinds.append("payload")
    if generator == "loops":
        kinds.append("steps")
    return kinds or ["starts"]


# ---------------------------------------------------------------- chart names


def _variant_titles(variant: Mapping) -> dict[str, str]:
    name = str(variant.get("name", ""))
    titles = {
        "throughput": f"Throughput over time {_DASH} {name}",
        "in_flight": f"In-flight runs and queue depth over time {_DASH} {name}",
        "start": f"Start latency over time {_DASH} {name}",
        "e2e": f"End-to-end latency over time {_DASH} {name}",
        "shards": f"Retries per shard {_DASH} {name}",
    }
    if not variant.get("samples"):
        del titles["in_flight"]
    if _metrics(variant).get("start_latency.count") == 0:  # the scheduled model: no start calls
        del titles["start"]
    for shard in charted_shards(variant)[0]:
        titles[f"waits {shard}"] = f"Waits by wait event over time {_DASH} {name} {_DASH} shard {shard}"
    return titles


def _comparison_rows(scenario: Mapping) -> list[dict]:
    return [r for r in (scenario.get("comparison") or {}).get("rows") or [] if isinstance(r, dict)]


def _row_label(row: Mapping) -> str:
    return str(row.get("label") or row.get("metric") or "")


def _scenario_titles(scenario: Mapping) -> list[str]:
    """The charts that lead a scenario's section, in page order."""
    kinds = _kinds(scenario)
    titles = []
    if "comparison" in kinds:
        comparison = scenario.get("comparison") or {}
        against = "own baselines" if per_variant_baselines(comparison) else comparison.get("baseline")
        titles.append(f"Headline ratios vs {against} {_DASH} {scenario.get('name', '')}")
        if _conflict_series(scenario):
            titles.append(f"Conflicts per 1,000 starts {_DASH} {scenario.get('name', '')}")
    if "steps" in kinds and _step_types(_variants(scenario)):
        titles.append(f"Step latency by type {_DASH} {scenario.get('name', '')}")
    return titles


def chart_titles(result: dict) -> list[str]:
    """Return the name of every chart :func:`render_html` draws for ``result``, in page order."""
    titles: list[str] = []
    for scenario in result.get("scenarios") or []:
        if not isinstance(scenario, dict):
            continue
        titles.extend(_scenario_titles(scenario))
        for variant in _variants(scenario):
            titles.extend(_variant_titles(variant).values())
    return titles


# ---------------------------------------------------------------- charts (pygal)


def _count_label(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:,.2f}"


def _ms_label(value: float) -> str:
    """An axis or value label in ms, never in scientific notation: 0.8 ms, 2.25 ms, 1,234 ms."""
    size = abs(value)
    text = f"{value:,.0f}" if size >= 100 else "0" if size < 0.001 else f"{value:.3f}".rstrip("0").rstrip(".")
    return f"{text} ms"


def _int_ticks(values: list[Any]) -> list[int]:
    """Whole-number axis ticks from 0 to at or above the largest value, at most 9 of them
    (steps of 1, 2 or 5 x 10^k): a count axis never shows 0.5 or 1e+03."""
    top = max([float(v) for v in values if v is not None] + [1.0])
    step, factors = 1, iter((2, 2.5, 2) * 20)
    while top / step > 8:
        step = int(step * next(factors))
    last = -(-top // step) * step
    return list(range(0, int(last) + 1, step))


def _svg(chart: Any) -> str:
    """Render a pygal chart as inline SVG with no XML declaration, scripts or comments."""
    svg = chart.render(is_unicode=True)
    svg = re.sub(r"<\?xml[^>]*\?>", "", svg)
    svg = re.sub(r"<script\b.*?</script>", "", svg, flags=re.S)
    return re.sub(r"<!--.*?-->", "", svg, flags=re.S).strip()


def _chart(kind: str, title: str, x_title: str, y_title: str, formatter: Callable[[float], str], **config: Any) -> Any:
    import pygal
    from pygal.style import Style

    style = Style(
        background="transparent", plot_background="#fff",
        font_family='system-ui, "Segoe UI", Roboto, sans-serif',
        title_font_size=16, legend_font_size=15, label_font_size=14, major_label_font_size=14,
        no_data_font_size=20, colors=_COLORS,
    )
    options = dict(
        title=title, x_title=x_title, y_title=y_title, style=style, js=[], width=620, height=380,
        legend_at_bottom=True, truncate_legend=-1, truncate_label=-1, disable_xml_declaration=True,
        no_data_text="No data", include_x_axis=True, value_formatter=formatter,
    )
    if kind == "XY":
        options["x_value_formatter"] = lambda v: f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3f}".rstrip("0").rstrip(".")
    options.update(config)
    return getattr(pygal, kind)(**options)


#: A legend row at the bottom of a chart (pygal: 1.5 x the 15 px legend font), in the chart's pixels.
_LEGEND_ROW = 23


def _legend(count: int, columns: int) -> dict[str, int]:
    """Legend columns, and room for ``count`` legend entries at the bottom: pygal keeps room for
    ``count // columns`` rows while it draws ``ceil(count / columns)``; the chart grows by the rows
    it would miss and by the rows past three, so the plot keeps its height."""
    rows, reserved = -(-count // columns), count // columns
    missing, extra = rows - reserved, max(0, rows - 3)
    return {"legend_at_bottom_columns": columns, "margin_bottom": 20 + _LEGEND_ROW * missing,
            "height": 380 + _LEGEND_ROW * (missing + extra)}


def _figure(title: str, svg: str) -> str:
    return f"<figure><h4>{escape(title)}</h4>{svg}</figure>"


def _series(points: list[dict], key: str, scale: float = 1.0) -> list[tuple[float, float | None]]:
    out = []
    for p in points:
        v = as_number(p.get(key))
        out.append((float(p["t"]), None if v is None else v / scale))
    return out


def _timeline_charts(variant: Mapping, titles: Mapping[str, str]) -> list[str]:
    timeline = variant.get("timeline") or {}
    points = [p for p in timeline.get("points") or [] if isinstance(p, dict) and as_number(p.get("t")) is not None]
    interval = as_number(timeline.get("interval_s")) or 1.0
    xy = dict(show_dots=len(points) <= 40, allow_interruptions=True)
    figures = []
    starts, completions = _series(points, "starts", interval), _series(points, "completions", interval)
    ticks = _int_ticks([v for _, v in starts + completions])
    throughput = _chart("XY", titles["throughput"], "time since start (s)", "runs per second", _count_label,
                        y_labels=ticks, **xy)
    throughput.add("starts/s", starts)
    throughput.add("completions/s", completions)
    figures.append(_figure(titles["throughput"], _svg(throughput)))
    samples = [s for s in variant.get("samples") or [] if isinstance(s, dict) and as_number(s.get("t")) is not None]
    if "in_flight" in titles:
        in_flight, queue = _series(samples, "in_flight"), _series(samples, "queue_depth")
        chart = _chart("XY", titles["in_flight"], "time since start (s)", "runs", _count_label,
                       y_labels=_int_ticks([v for _, v in in_flight + queue]), show_dots=len(samples) <= 40,
                       allow_interruptions=True)
        chart.add("in-flight runs", in_flight)
        chart.add("queue depth", queue)
        figures.append(_figure(titles["in_flight"], _svg(chart)))
    for key, label in (("start", "start latency"), ("e2e", "end-to-end latency")):
        if key in titles:
            chart = _chart("XY", titles[key], "time since start (s)", f"{label} (ms)", _ms_label, **xy)
            chart.add("p50", _series(points, f"{key}_latency_p50"))
            chart.add("p99", _series(points, f"{key}_latency_p99"))
            figures.append(_figure(titles[key], _svg(chart)))
    return figures


def _waits_chart(variant: Mapping, shard: str, title: str) -> str:
    """Mean sessions of ``shard`` waiting per bucket, stacked by wait event (PostgreSQL's sampler)."""
    series = chart_series(wait_timeline(variant).get(shard, {}))
    width = max((len(values) for _, values in series), default=0)
    step = bucket_s(variant)
    chart = _chart("StackedLine", title, "time since start (s)", "sessions waiting (mean)", _count_label, fill=True,
                   show_dots=width <= 40, show_minor_x_labels=False, x_labels_major_every=max(1, -(-width // 8)),
                   truncate_legend=40, **_legend(len(series), 2))
    chart.x_labels = [f"{k * step:g}" for k in range(width)]
    for event, values in series:
        chart.add(event, values)
    return _figure(title, _svg(chart))


def _waits_charts(variant: Mapping, titles: Mapping[str, str]) -> str:
    """The waits charts of a variant, with a note when only the shards that waited longest are shown."""
    shards, count = charted_shards(variant)
    if not shards:
        return ""
    note = ""
    if count > len(shards):
        note = (f'<p class="muted">Waits of the {len(shards)} shards (of {count}) that waited longest: shards '
                f'{", ".join(escape(s) for s in shards)}.</p>')
    figures = "".join(_waits_chart(variant, shard, titles[f"waits {shard}"]) for shard in shards)
    return f'{note}<div class="charts">{figures}</div>'


def _shard_list(variant: Mapping) -> list[dict]:
    shards = variant.get("shards")
    return [s for s in shards if isinstance(s, dict)] if isinstance(shards, list) else []


def _shard_chart(variant: Mapping, title: str) -> str:
    shards = _shard_list(variant)
    causes = _shard_causes(shards)
    by_cause = {c: [as_number(_by_cause(s).get(c)) or 0.0 for s in shards] for c in causes}
    several = sum(1 for values in by_cause.values() if any(values)) > 1
    totals = [sum(as_number(v) or 0.0 for v in _by_cause(s).values()) if _by_cause(s) else None for s in shards]
    chart = _chart("Bar", title, "shard", "retries (count)", _count_label,
                   y_labels=_int_ticks([t for values in by_cause.values() for t in values] if several else totals))
    chart.x_labels = [str(s.get("shard", i)) for i, s in enumerate(shards)]
    if several:  # one bar per cause
        for cause, values in by_cause.items():
            chart.add(cause_label(cause), values)
    else:
        chart.add(retries_label(causes), totals)
    return _figure(title, _svg(chart))


def _by_cause(shard: Mapping, key: str = RETRIES) -> Mapping:
    """A shard's ``retries`` (or ``wait_ms``) by cause; empty when absent."""
    value = shard.get(key)
    return value if isinstance(value, Mapping) else {}


def _shard_causes(shards: list[dict]) -> list[str]:
    return sorted({c for s in shards for c in _by_cause(s)})


def _cause_cell(by_cause: Mapping, show: Callable[[Any], str]) -> str:
    """A by-cause figure's total, and each cause's share when more than one cause has some."""
    if not by_cause:
        return _DASH
    values = {c: as_number(v) or 0.0 for c, v in by_cause.items()}
    text = show(sum(values.values()))
    some = [(c, v) for c, v in values.items() if v]
    if len(some) > 1:
        text += "<br>" + "<br>".join(f'<span class="muted">{escape(cause_label(c))} {show(v)}</span>' for c, v in some)
    return text


# ---------------------------------------------------------------- scenario leads


def _latency_cells(metrics: Mapping, base: str) -> list[Cell]:
    return [_unit(f"{base}.{stat}", metrics.get(f"{base}.{stat}")) for stat, _ in _LATENCY_STATS]


def _lead_schedule(scenario: Mapping) -> str:
    rows = []
    for v in _variants(scenario):
        m, slots = _metrics(v), v.get("slots") if isinstance(v.get("slots"), Mapping) else {}
        counts = [_flag(f"slots.{k}", slots.get(k, m.get(f"slots.{k}"))) for k in ("expected", "fired", "duplicates",
                                                                                      "missed")]
        rows.append([escape(str(v.get("name", ""))), *_latency_cells(m, "fire_lag"), *counts])
    headers = ["variant", *(f"fire lag {h}" for _, h in _LATENCY_STATS), "slots expected", "fired", "duplicates",
               "missed"]
    return ("<p>Fire lag is how long after its due instant each scheduled run was created; each due slot "
            "must start exactly one run.</p>" + _table(headers, rows, set(range(1, len(headers)))))


def _lead_rate(scenario: Mapping) -> str:
    rows = []
    for v in _variants(scenario):
        m = _metrics(v)
        target, achieved = as_number(m.get("starts.target_rate")), as_number(m.get("starts.rate"))
        share = format_percent(achieved / target) if target and achieved is not None else _DASH
        rows.append([escape(str(v.get("name", ""))), _unit("starts.target_rate", target),
                     _unit("starts.rate", achieved), share, _unit("completions.rate", m.get("completions.rate")),
                     _flag("late", m.get("late")), _flag("dropped", m.get("dropped")),
                     _unit("e2e_latency.p99", m.get("e2e_latency.p99"))])
    headers = ["variant", "target starts/s", "achieved starts/s", "achieved of target", "completions/s", "late",
               "dropped", "end-to-end p99"]
    return ("<p>Starts arrive on a fixed plan whatever the engine does: does it keep up?</p>"
            + _table(headers, rows, set(range(1, len(headers)))))


def _lead_payload(scenario: Mapping) -> str:
    size = _settings(scenario, "input", "size_bytes")
    rows = []
    for v in _variants(scenario):
        m = _metrics(v)
        rows.append([escape(str(v.get("name", ""))), format_bytes(size), _unit("started", m.get("started")),
                     _unit("stored_bytes", m.get("stored_bytes")), _unit("file_growth_bytes", m.get("file_growth_bytes")),
                     _flag("rejected", m.get("rejected")), _unit("e2e_latency.p99", m.get("e2e_latency.p99"))])
    headers = ["variant", "input size per start", "runs started", "bytes stored", "shard growth",
               "starts rejected", "end-to-end p99"]
    return ("<p>Large inputs are stored in full; oversized ones are refused at the start (rejected), never "
            "half-stored.</p>" + _table(headers, rows, set(range(1, len(headers)))))


def _lead_steps(scenario: Mapping, title: str | None) -> str:
    variants = _variants(scenario)
    several = len(variants) > 1
    rows = []
    for t in _step_types(variants):
        for v in variants:
            m = _metrics(v)
            base = f"step_latency.{t}"
            rows.append([escape(t), *([escape(str(v.get("name", "")))] if several else []),
                         _unit(f"{base}.count", m.get(f"{base}.count")), *_latency_cells(m, base)])
    headers = ["step type", *(["variant"] if several else []), "steps", *(h for _, h in _LATENCY_STATS)]
    table = _table(headers, rows, set(range(2 if several else 1, len(headers))))
    chart = ""
    if title and variants:
        types = _step_types(variants)
        m = _metrics(variants[0])
        bar = _chart("Bar", title, "step type", "step latency (ms)", _ms_label)
        bar.x_labels = types
        for stat in ("p50", "p99"):
            bar.add(stat, [as_number(m.get(f"step_latency.{t}.{stat}")) for t in types])
        chart = _figure(title, _svg(bar))
    return "<p>How long each step type takes while many long runs journal steps on the same shards.</p>" + table + chart


def _lead_starts(scenario: Mapping) -> str:
    rows = []
    for v in _variants(scenario):
        m = _metrics(v)
        rows.append([escape(str(v.get("name", ""))), *_latency_cells(m, "start_latency"),
                     _unit(RETRIES_PER_1000, m.get(RETRIES_PER_1000)),
                     _unit("completions.rate", m.get("completions.rate"))])
    causes = causes_of(name for v in _variants(scenario) for name in _metrics(v))
    headers = ["variant", *(f"start {h}" for _, h in _LATENCY_STATS), retries_label(causes), "completions/s"]
    return "<p>Start latency and contention when many starts hit the shards at once.</p>" + _table(
        headers, rows, set(range(1, len(headers))))


def _comparison_columns(scenario: Mapping) -> tuple[str | None, list[str]]:
    baseline = (scenario.get("comparison") or {}).get("baseline")
    names: list[str] = [str(baseline)] if baseline is not None else []
    candidates = [v.get("name") for v in _variants(scenario)]
    candidates += [k for r in _comparison_rows(scenario) for k in (r.get("values") or {})]
    for name in candidates:
        if name is not None and str(name) not in names:
            names.append(str(name))
    return (None if baseline is None else str(baseline)), names


def _ratio_chart(scenario: Mapping, title: str) -> str:
    baseline, names = _comparison_columns(scenario)
    comparison = scenario.get("comparison") or {}
    own = own_baselines(comparison, names)
    rows = {str(r.get("metric")): r for r in _comparison_rows(scenario)}
    picked = [rows[m] for m in _HEADLINE_RATIOS if m in rows] or list(rows.values())[:4]
    longest = max((len(n) for n in names), default=0)
    against = "own baseline" if per_variant_baselines(comparison) else baseline
    shown = [name for name in names if own[name] != name]
    chart = _chart("Bar", title, "metric", f"ratio to {against} (\u00d7)", lambda v: f"\u00d7{v:.2f}",
                   truncate_legend=60, **_legend(len(shown), 3 if longest <= 18 else 1))
    chart.x_labels = [_SHORT_LABELS.get(str(r.get("metric"))) or _row_label(r) for r in picked]
    for name in shown:
        chart.add(name, [as_number((r.get("ratios") or {}).get(name)) for r in picked])
    return _figure(title, _svg(chart))


def _conflict_series(scenario: Mapping) -> list[tuple[str, str]]:
    """The contention figures (metric, label) a comparison's variants have; none on SQLite."""
    variants = _variants(scenario)
    found = [(m, label) for m, label in _CONFLICT_SERIES if any(m in _metrics(v) for v in variants)]
    return found if found and len(variants) > 1 else []


def _short_names(names: list[str]) -> list[str]:
    """Variant names without the parts every one of them has (``spread`` when no variant is
    ``hot``), so that the axis keeps room for the bars; the tables name them in full."""
    parts = [name.split("/") for name in names]
    common = set.intersection(*(set(p[1:]) for p in parts)) if parts else set()
    return ["/".join([p[0], *(x for x in p[1:] if x not in common)]) for p in parts]


def _conflicts_chart(scenario: Mapping, title: str) -> str:
    """Conflicts (and deadlocks, lock waits) per 1,000 starts per variant, one bar series each,
    the first variant on top."""
    variants = _variants(scenario)[::-1]  # pygal draws the first label at the bottom
    series = _conflict_series(scenario)
    if series[0][0] != _CONFLICT_SERIES[0][0]:
        series.insert(0, _CONFLICT_SERIES[0])  # conflicts always; 0 where the clients retried none
    values = {m: [as_number(metric_value(_metrics(v), m)) for v in variants] for m, _ in series}
    names = _short_names([str(v.get("name", "")) for v in variants])
    legend = _legend(len(series), 1)
    legend["height"] += max(0, len(names) * len(series) * 9 - 200)  # a bar's height stays readable
    chart = _chart("HorizontalBar", title, "per 1,000 starts", "variant", _count_label,
                   y_labels=_int_ticks([x for xs in values.values() for x in xs]), **legend)
    chart.x_labels = names
    for metric, label in series:
        chart.add(label, values[metric])
    return _figure(title, _svg(chart))


def _lead_comparison(scenario: Mapping, titles: list[str]) -> str:
    baseline, names = _comparison_columns(scenario)
    comparison = scenario.get("comparison") or {}
    own, per_variant = own_baselines(comparison, names), per_variant_baselines(comparison)
    rows = []
    for row in _comparison_rows(scenario):
        metric = str(row.get("metric", ""))
        values, ratios, better = row.get("values") or {}, row.get("ratios") or {}, row.get("higher_is_better")
        direction = {True: "higher is better", False: "lower is better"}.get(better, "")
        cells: list[Cell] = [escape(_row_label(row)) + (f' <span class="muted">({direction})</span>' if direction
                                                          else "")]
        for name in names:
            ratio = as_number(ratios.get(name))
            text = f"<span>{_unit(metric, values.get(name))}</span>"
            if own[name] != name:
                text += f" <span>{_ratio(ratio)}</span>"
            text = f"<span>{text}</span>"
            verdict = ""
            if own[name] != name and ratio is not None and better is not None and _ratio(ratio) != _ratio(1.0):
                verdict = "better" if (ratio > 1.0) == bool(better) else "worse"
            cells.append((text, f"cmp {verdict}".strip()))
        rows.append(cells)
    if per_variant:
        note = ('<p class="muted">Each cell: the value, then its ratio to that variant\'s own baseline, named in '
                'its column header; green is better than the baseline, red worse.</p>')
    else:
        note = (f'<p class="muted">Each cell: the value, then its ratio to the baseline {escape(str(baseline))}; '
                'green is better than the baseline, red worse.</p>' if baseline else "")
    headers = ["metric", *(f"{n} (baseline)" if own[n] == n else f"{n} (vs {own[n]})" if per_variant else n
                           for n in names)]
    charts = _ratio_chart(scenario, titles[0]) + "".join(_conflicts_chart(scenario, t) for t in titles[1:])
    return charts + note + _table(headers, rows, set(range(1, len(headers))))


def _lead(scenario: Mapping) -> str:
    kinds = _kinds(scenario)
    titles = iter(_scenario_titles(scenario))
    parts = []
    for kind in kinds:
        if kind == "comparison":
            charts = 1 + bool(_conflict_series(scenario))  # the ratios, and the conflicts when present
            parts.append(_lead_comparison(scenario, [next(titles) for _ in range(charts)]))
        elif kind == "schedule":
            parts.append(_lead_schedule(scenario))
        elif kind == "rate":
            parts.append(_lead_rate(scenario))
        elif kind == "payload":
            parts.append(_lead_payload(scenario))
        elif kind == "steps":
            parts.append(_lead_steps(scenario, next(titles, None)))
        else:
            parts.append(_lead_starts(scenario))
    return '<div class="lead"><h3>What this scenario shows</h3>' + "".join(parts) + "</div>"


def _headline(scenario: Mapping) -> str:
    """One line of headline figures (escaped HTML) for the summary."""
    variants = _variants(scenario)
    if not variants:
        return "no variants"
    kind = _kinds(scenario)[0]
    m = _metrics(variants[0])
    if kind == "comparison":
        _, names = _comparison_columns(scenario)
        comparison = scenario.get("comparison") or {}
        own = own_baselines(comparison, names)
        against = "own baselines" if per_variant_baselines(comparison) else names[0]
        rows = {str(r.get("metric")): r for r in _comparison_rows(scenario)}
        row = rows.get("completions.rate")
        if row:
            ratios = [(n, as_number((row.get("ratios") or {}).get(n))) for n in names[1:] if own[n] != n]
            ratios = [(n, r) for n, r in ratios if r is not None]
            if ratios:
                best = max(ratios, key=lambda x: x[1])
                worst = min(ratios, key=lambda x: x[1])
                return (f"completions/s vs {escape(against)}: best {escape(best[0])} {_ratio(best[1])}, "
                        f"worst {escape(worst[0])} {_ratio(worst[1])} ({len(variants)} variants)")
        return f"{len(variants)} variants compared"
    if kind == "schedule":
        return (f"fire lag p99 {_unit('fire_lag.p99', m.get('fire_lag.p99'))}; slots: "
                f"{_unit('slots.expected', m.get('slots.expected'))} expected, "
                f"{_unit('slots.fired', m.get('slots.fired'))} fired, {_flag('slots.duplicates', m.get('slots.duplicates'))}"
                f" duplicates, {_flag('slots.missed', m.get('slots.missed'))} missed")
    if kind == "rate":
        return (f"target {_unit('starts.target_rate', m.get('starts.target_rate'))}, achieved "
                f"{_unit('starts.rate', m.get('starts.rate'))}; {_flag('late', m.get('late'))} late, "
                f"{_flag('dropped', m.get('dropped'))} dropped; end-to-end p99 {_unit('e2e_latency.p99', m.get('e2e_latency.p99'))}")
    if kind == "payload":
        return (f"{_unit('stored_bytes', m.get('stored_bytes'))} stored, {_flag('rejected', m.get('rejected'))} "
                f"starts rejected; end-to-end p99 {_unit('e2e_latency.p99', m.get('e2e_latency.p99'))}")
    if kind == "steps":
        slowest = max(_step_types(variants), default=None, key=lambda t: as_number(m.get(f"step_latency.{t}.p99")) or 0)
        if slowest:
            return (f"slowest step type {escape(slowest)}: p99 {_unit(f'step_latency.{slowest}.p99', m.get(f'step_latency.{slowest}.p99'))};"
                    f" {retries_label(causes_of(m))} {_unit(RETRIES_PER_1000, m.get(RETRIES_PER_1000))}")
    return (f"start p99 {_unit('start_latency.p99', m.get('start_latency.p99'))}, "
            f"completions {_unit('completions.rate', m.get('completions.rate'))}; "
            f"{retries_label(causes_of(m))} {_unit(RETRIES_PER_1000, m.get(RETRIES_PER_1000))}")


# ---------------------------------------------------------------- sections


def _thresholds(scenario: Mapping) -> list[dict]:
    return [t for t in scenario.get("thresholds") or [] if isinstance(t, dict)]


def _thresholds_section(scenario: Mapping) -> str:
    thresholds = _thresholds(scenario)
    if not thresholds:
        return ""
    rows = []
    for t in thresholds:
        expression, metric = str(t.get("expression") or ""), str(t.get("metric") or "")
        actual = _in_threshold_unit(metric, t.get("value"), _threshold_unit(expression))
        rows.append([f"<code>{escape(expression)}</code>", _plain(t.get("variant")), _threshold_limit(expression, metric),
                     actual, _badge(t.get("passed"))])
    return "<h3>Thresholds</h3>" + _table(["threshold", "variant", "limit", "actual", "result"], rows, {2, 3})


def _key_figures(metrics: Mapping) -> list[list[str]]:
    """The key figures' rows; retries and wait time name their cause when there is one, and
    with several causes each cause's retries follow."""
    causes = causes_of(metrics)
    rows = []
    for label, key in _KEY_FIGURES:
        if key not in metrics:
            continue
        if key in (RETRIES_PER_1000, WAIT_MS):
            label = retries_label(causes, label)
        rows.append([escape(label), _flag(key, metrics.get(key))])
        if key == RETRIES_PER_1000 and len(causes) > 1:
            rows += [[escape(f"retries ({cause_label(c)})"), _flag(f"{key}.{c}", metrics.get(f"{key}.{c}"))]
                     for c in causes]
    return rows


def _seconds_list(waits: list[tuple[str, float]]) -> str:
    return "<br>".join(f"{escape(event)} {format_seconds(seconds)}" for event, seconds in waits) or _DASH


def _server_section(variant: Mapping) -> str:
    """The database server's figures of a variant (PostgreSQL): totals, waits per shard, the
    database and WAL deltas and the client-vs-server cross-check; "" without any."""
    if not has_server_figures(variant):
        return ""
    server, metrics = server_of(variant), _metrics(variant)
    facts = []
    if as_number(server.get("samples")) is not None:
        every = as_number(server.get("interval_s"))
        facts.append(f"{format_count(server['samples'])} samples"
                     + (f", one every {every * 1000:g} ms" if every else ""))
    repeats = variant.get("repeats") if isinstance(variant.get("repeats"), dict) else {}
    if repeats.get("representative"):
        facts.append(f"totals are medians of {format_count(repeats.get('count'))} repetitions; shards, database and "
                     f"cross-check are repetition {format_count(repeats['representative'])}'s")
    parts = ["<h4>Database server</h4>"]
    if facts:
        parts.append(f'<p class="muted">Sampled: {"; ".join(facts)}.</p>')
    totals = [[escape(label), _unit(key, metrics.get(key))] for label, key in _SERVER_FIGURES if key in metrics]
    tables = [f'<div>{_table(["server figure", "value"], totals, {1})}</div>'] if totals else []
    rows = []
    for shard in (s for s in _shard_list(variant) if shard_server(s)):
        figures, key = shard_server(shard), str(shard.get("shard", ""))
        locks = not_granted(variant, key)
        rows.append([escape(key), _seconds_list(top_waits(figures.get("waits"))),
                     format_count(figures.get("lock_waits")), format_seconds(figures.get("lock_wait_s")),
                     f"{format_count(locks.get('max'))} / {format_count(locks.get('mean'))}" if locks else _DASH])
    if rows:
        tables.append("<div>" + _table(["shard", "top wait events (session-seconds)", "lock waits", "lock wait",
                                        "locks not granted (max / mean)"], rows, {2, 3, 4}) + "</div>")
    parts.append('<div class="grid">' + "".join(tables) + "</div>")
    return '<div class="server">' + "\n".join(parts + _delta_tables(variant) + _cross_check_table(variant)) + "</div>"


def _delta_tables(variant: Mapping) -> list[str]:
    """The databases' and WAL's before/after deltas of a variant, as tables."""
    tables = []
    database = [[_plain(d.get("server")), format_count(d.get("xact_commit")), format_count(d.get("xact_rollback")),
                 format_count(d.get("deadlocks")), format_count(d.get("conflicts")),
                 "yes: its counts include other sessions'" if d.get("shared") else "no"]
                for d in database_deltas(variant)]
    if database:
        tables.append(_table(["database (before/after)", "commits", "rollbacks", "deadlocks", "conflicts",
                              "shared"], database, {1, 2, 3, 4}))
    wal = [[_plain(w.get("server")), format_count(w.get("wal_records")), format_bytes(w.get("wal_bytes")),
            format_count(w.get("wal_fpi"))] for w in wal_deltas(variant)]
    if wal:
        tables.append(_table(["WAL (before/after)", "records", "bytes", "full-page images"], wal, {1, 2, 3}))
    return tables


def _cross_check_table(variant: Mapping) -> list[str]:
    """The client-vs-server cross-check of a variant: a table whose disagreeing rows are errors."""
    rows = []
    for item in cross_checks(variant):
        agrees = bool(item.get("agrees"))
        result, extra = ("agree", "") if agrees else ('<span class="bad">DISAGREE</span>', "error")
        cells = [_plain(item.get("what")), format_count(item.get("client")), format_count(item.get("server")),
                 format_count(item.get("tolerance")), result, _plain(item.get("note") or None)]
        rows.append([(cell, extra) for cell in cells])
    if not rows:
        return []
    return ["<h4>Client vs server</h4>" + _table(["what", "client", "server", "tolerance", "result", "note"], rows,
                                                 {1, 2, 3})]


def _variant_section(variant: Mapping, open_: bool) -> str:
    metrics = _metrics(variant)
    name = str(variant.get("name", ""))
    count = variant.get("shard_count")
    if count is None:
        count = variant.get("shards") if isinstance(variant.get("shards"), int) else len(_shard_list(variant)) or None
    facts = ", ".join(
        text for text in (
            f"{format_count(count)} shards" if count is not None else "",
            f"route {escape(str(variant['route']))}" if variant.get("route") else "",
            "every start on one definition" if variant.get("hot_definition") else "",
            *(escape(setting_text(k, v)) for k, v in variant_settings(variant)),
            f"ran {_duration(variant.get('duration_s'))}" if variant.get("duration_s") is not None else "",
        ) if text
    )
    rows = _key_figures(metrics)
    repeats = variant.get("repeats") if isinstance(variant.get("repeats"), dict) else {}
    load = machine_line(variant.get("machine"), markup=False)
    parts = [f'<p class="muted">{facts}</p>' if facts else "",
             f'<p class="muted">medians of {format_count(repeats.get("count"))} repetitions</p>' if repeats else "",
             f"<p>Machine: {escape(load)}</p>" if load else ""]
    tables = [f'<div><h4>Key figures</h4>{_table(["figure", "value"], rows, {1})}</div>']
    errors = [e for e in variant.get("errors") or [] if isinstance(e, dict)]
    if errors:
        parts.append("<h4>Errors</h4>")
        parts.append(_table(["message", "count"], [[_plain(e.get("message")), format_count(e.get("count"))]
                                                   for e in errors], {1}))
    differences = (variant.get("crosscheck") or {}).get("differences") or []
    if differences:
        items = "".join(f'<li class="error">{_plain(d)}</li>' for d in differences)
        parts.append(f'<h4 class="error">Cross-check differences ({len(differences)})</h4><ul>{items}</ul>')
    shards = _shard_list(variant)
    if shards:
        shard_rows = []
        for s in shards:
            by_status = s.get("by_status") if isinstance(s.get("by_status"), Mapping) else {}
            shard_rows.append([_plain(s.get("shard")), format_count(s.get("runs")),
                               format_count(sum(int(by_status.get(k) or 0) for k in ("pending", "running"))),
                               format_count(s.get("queue_depth")), _cause_cell(_by_cause(s), format_count),
                               _cause_cell(_by_cause(s, WAIT_MS), lambda v: _unit(WAIT_MS, v)),
                               format_bytes(s.get("size_bytes"))])
        causes = _shard_causes(shards)
        tables.append("<div><h4>Shards</h4>" + _table(
            ["shard", "runs", "unfinished", "queue depth", retries_label(causes), retries_label(causes, "waited"),
             "size"], shard_rows, set(range(1, 7))) + "</div>")
    parts.append('<div class="grid">' + "".join(tables) + "</div>")
    titles = _variant_titles(variant)
    figures = _timeline_charts(variant, titles) + [_shard_chart(variant, titles["shards"])]
    parts.append('<div class="charts">' + "".join(figures) + "</div>")
    parts.append(_server_section(variant))
    parts.append(_waits_charts(variant, titles))
    body = "\n".join(p for p in parts if p)
    return (f"<details{' open' if open_ else ''}><summary>Variant {escape(name)}</summary>{body}</details>")


def _settings_section(scenario: Mapping) -> str:
    settings = [("smoke preset", scenario.get("smoke")), ("source", scenario.get("source"))]
    settings += _flatten(scenario.get("settings") or {})
    rows = [[escape(k), _settings_value(k, v)] for k, v in settings if v is not None and v != [] and k]
    return f"<details><summary>Settings</summary>{_table(['setting', 'value'], rows)}</details>"


def _scenario_section(scenario: Mapping) -> str:
    name = str(scenario.get("name", ""))
    parts = [f'<h2 id="{_anchor(name)}">{escape(name)} {_badge(scenario.get("passed"))}</h2>']
    facts = [text for text in (
        "smoke preset" if scenario.get("smoke") else "",
        f"took {format_duration(scenario.get('duration_s'))}" if scenario.get("duration_s") is not None else "") if text]
    if facts:
        parts.append(f'<p class="muted">{", ".join(facts)}</p>')
    for key in ("description", "shows"):
        if scenario.get(key):
            parts.append(f"<p>{escape(str(scenario[key]))}</p>")
    parts.append(_lead(scenario))
    parts.append(_thresholds_section(scenario))
    parts.append(_settings_section(scenario))
    variants = _variants(scenario)
    parts += [_variant_section(v, len(variants) == 1) for v in variants]
    return "<section>" + "\n".join(p for p in parts if p) + "</section>"


def _summary(result: Mapping, scenarios: list[dict]) -> str:
    checked = [(s, t) for s in scenarios for t in _thresholds(s)]
    failed = [(s, t) for s, t in checked if not t.get("passed")]
    exit_code = result.get("exit_code")
    verdict = {True: "PASS", False: "FAIL"}.get(result.get("passed"), "n/a")
    line = (f"<p><strong>{verdict}</strong>{f' (exit code {_plain(exit_code)})' if exit_code is not None else ''}: "
            f"{len(checked)} thresholds checked, {len(failed)} failed.</p>")
    failures = ""
    if failed:
        items = "".join(
            f'<li class="error">{escape(str(s.get("name", "")))} / {_plain(t.get("variant"))}: '
            f'<code>{escape(str(t.get("expression") or ""))}</code>, actual '
            f'{_in_threshold_unit(str(t.get("metric") or ""), t.get("value"), _threshold_unit(str(t.get("expression") or "")))}</li>'
            for s, t in failed)
        failures = f"<h3>Thresholds failed</h3><ul>{items}</ul>"
    lines = "".join(
        f'<li><a href="#{_anchor(str(s.get("name", "")))}">{escape(str(s.get("name", "")))}</a> '
        f'{_badge(s.get("passed"))} {_headline(s)}</li>' for s in scenarios)
    per_scenario = f"<h3>Scenarios</h3><ul>{lines}</ul>" if scenarios else ""
    return (f'<section class="summary" id="summary"><h2 style="margin-top:.3em">Summary</h2>{line}{_backend(result)}'
            f'{failures}{per_scenario}</section>')


def _backend(result: Mapping) -> str:
    """The backend and its servers with their settings (PostgreSQL); "" without servers."""
    found = backend_servers(result)
    if found is None:
        return ""
    name, servers = found
    items = "".join(
        f"<li><code>{_plain(server.get('server'))}</code>"
        + (": " + ", ".join(f"{escape(k)} {_plain(v)}" for k, v in server_settings(server)) if server_settings(server)
           else "") + "</li>"
        for server in servers)
    return f"<p>Backend: {escape(name)}, {len(servers)} server{'' if len(servers) == 1 else 's'}:</p><ul>{items}</ul>"


def _contents(scenarios: list[dict]) -> str:
    items = "".join(f'<li><a href="#{_anchor(str(s.get("name", "")))}">{escape(str(s.get("name", "")))}</a></li>'
                    for s in scenarios)
    return f'<nav aria-label="Contents"><h2>Contents</h2><ol>{items}<li><a href="#run">The run</a></li></ol></nav>'


def render_html(result: dict) -> str:
    """Render ``result`` (a ``wfctl.stress.result/1`` document) as one self-contained HTML page."""
    scenarios = [s for s in result.get("scenarios") or [] if isinstance(s, dict)]
    heading = " ".join(str(s.get("name", "")) for s in scenarios) or "stress run"
    machine = result.get("machine") or {}
    info = [
        ("command", " ".join(str(c) for c in result.get("command") or []) or None),
        ("created at", result.get("created_at")),
        ("wfctl version", result.get("wfctl_version")),
        ("exit code", result.get("exit_code")),
    ] + [(f"machine {k}", v) for k, v in machine.items()]
    run = _table(["run", "value"], [[escape(k), _plain(v)] for k, v in info if v is not None])
    body = "\n".join(_scenario_section(s) for s in scenarios) or '<p class="muted">No scenarios.</p>'
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>wfctl stress: {escape(heading)}</title><style>{_CSS}</style></head><body>"
        f"<h1>wfctl stress run {_badge(result.get('passed'))}</h1>{_summary(result, scenarios)}{_contents(scenarios)}\n"
        f'{body}\n<section><h2 id="run">The run</h2>{run}</section>\n</body></html>\n'
    )
