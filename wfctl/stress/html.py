"""Render a stress-run result (schema ``wfctl.stress.result/1``) as one HTML page.

The page is self-contained: styles are inline and the charts are pygal SVGs embedded
inline with their scripts removed, so it renders offline (opened from disk or kept as a
CI artifact) and references no external script, font, stylesheet or image. Every string
taken from the result is escaped. pygal is imported only when a page is rendered.
"""

from __future__ import annotations

import json
import re
from html import escape
from collections.abc import Collection
from typing import Any

from .metrics import as_number
from .report import machine_line

__all__ = ["chart_titles", "render_html"]

_DASH = "\u2014"
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0 auto;
max-width:1100px;padding:1em 1.5em}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:2px solid #ddd;padding-bottom:.2em}
h3{margin-top:1.6em}h4{margin:1.2em 0 .3em}
table{border-collapse:collapse;margin:.4em 0 1em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:.1em .6em;border-radius:.8em;color:#fff;font-size:.8em;
font-weight:600;vertical-align:middle}
.pass{background:#2e7d32}.fail{background:#c62828}.na{background:#777}
.muted{color:#666}.error{color:#b71c1c;background:#fdecea}
.grid{display:flex;flex-wrap:wrap;gap:0 2em}
figure{margin:.5em 0 1.5em}figure svg{width:100%;max-width:900px;height:auto}
figure svg .plot_title{display:none}
"""
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
_KEY_FIGURES = (
    ("started", "started"),
    ("completed", "completed"),
    ("failed", "failed"),
    ("stuck", "stuck"),
    ("dropped", "dropped"),
    ("late", "late"),
    ("rejected", "rejected"),
    ("success rate", "success_rate"),
    ("completions/s", "completions.rate"),
    ("start latency p50 (ms)", "start_latency.p50"),
    ("start latency p99 (ms)", "start_latency.p99"),
    ("e2e latency p50 (ms)", "e2e_latency.p50"),
    ("e2e latency p99 (ms)", "e2e_latency.p99"),
    ("lock retries / 1000 starts", "lock_retries_per_1000"),
)


# ---------------------------------------------------------------- chart names


def _variant_titles(variant: dict) -> tuple[str, str, str]:
    name = str(variant.get("name", ""))
    return (
        f"Throughput over time {_DASH} {name}",
        f"Latency over time {_DASH} {name}",
        f"Contention per shard {_DASH} {name}",
    )


def _comparison_rows(scenario: dict) -> list[dict]:
    return list((scenario.get("comparison") or {}).get("rows") or [])


def _row_label(row: dict) -> str:
    return str(row.get("label") or row.get("metric") or "")


def _comparison_title(row: dict) -> str:
    return f"Variant comparison {_DASH} {_row_label(row)}"


def chart_titles(result: dict) -> list[str]:
    """Return the name of every chart :func:`render_html` draws for ``result``, in page order."""
    titles: list[str] = []
    for scenario in result.get("scenarios") or []:
        for variant in scenario.get("variants") or []:
            titles.extend(_variant_titles(variant))
        titles.extend(_comparison_title(row) for row in _comparison_rows(scenario))
    return titles


# ---------------------------------------------------------------- formatting


def _fmt(value: Any) -> str:
    """A short, escaped text for a value: numbers rounded, None as a dash."""
    if value is None:
        return _DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        return f"{value:.3g}"
    if isinstance(value, (list, dict)):
        return escape(json.dumps(value, ensure_ascii=False)) if value else _DASH
    return escape(str(value))


def _badge(passed: Any) -> str:
    if passed is None:
        return '<span class="badge na">n/a</span>'
    return '<span class="badge pass">PASS</span>' if passed else '<span class="badge fail">FAIL</span>'


def _table(headers: list[str], rows: list[list[str]], numeric: Collection[int] = ()) -> str:
    """An HTML table; ``headers`` are plain text, ``rows`` cells are already-escaped HTML."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)

    def row_html(row: list[str]) -> str:
        return "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row))

    body = "".join(f"<tr>{row_html(row)}</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict) and data:
        return [item for k, v in data.items() for item in _flatten(v, f"{prefix}{k}.")]
    return [(prefix[:-1], data)]


# ---------------------------------------------------------------- charts (pygal)


def _short(value: float) -> str:
    return f"{value:.4g}"


def _svg(chart: Any) -> str:
    """Render a pygal chart as inline SVG with no XML declaration, scripts or comments."""
    svg = chart.render(is_unicode=True)
    svg = re.sub(r"<\?xml[^>]*\?>", "", svg)
    svg = re.sub(r"<script\b.*?</script>", "", svg, flags=re.S)
    return re.sub(r"<!--.*?-->", "", svg, flags=re.S).strip()


def _chart(kind: str, title: str, x_title: str, y_title: str, **config: Any) -> Any:
    import pygal
    from pygal.style import Style

    style = Style(
        background="transparent",
        plot_background="#fff",
        font_family='system-ui, "Segoe UI", Roboto, sans-serif',
        title_font_size=15,
        legend_font_size=12,
        label_font_size=11,
        major_label_font_size=11,
        no_data_font_size=20,
        colors=_COLORS,
    )
    options = dict(
        title=title, x_title=x_title, y_title=y_title, style=style, js=[], width=900, height=340,
        legend_at_bottom=True, truncate_legend=-1, truncate_label=-1, disable_xml_declaration=True,
        no_data_text="No data", include_x_axis=True,
    )
    options.update(config)
    return getattr(pygal, kind)(**options)


def _figure(title: str, svg: str) -> str:
    return f"<figure><h4>{escape(title)}</h4>{svg}</figure>"


def _timeline_charts(variant: dict, titles: tuple[str, str, str]) -> str:
    timeline = variant.get("timeline") or {}
    points = [p for p in timeline.get("points") or [] if as_number(p.get("t")) is not None]
    interval = as_number(timeline.get("interval_s")) or 1.0
    dots = len(points) <= 40

    def series(key: str, scale: float = 1.0) -> list[tuple[float, float | None]]:
        out = []
        for p in points:
            v = as_number(p.get(key))
            out.append((float(p["t"]), None if v is None else v / scale))
        return out

    throughput = _chart("XY", titles[0], "time (s)", "per second", show_dots=dots, allow_interruptions=True)
    throughput.add("starts/s", series("starts", interval))
    throughput.add("completions/s", series("completions", interval))
    latency = _chart("XY", titles[1], "time (s)", "latency (ms)", show_dots=dots, allow_interruptions=True)
    for key, label in (
        ("start_latency_p50", "start p50"),
        ("start_latency_p99", "start p99"),
        ("e2e_latency_p50", "e2e p50"),
        ("e2e_latency_p99", "e2e p99"),
    ):
        latency.add(label, series(key))
    return _figure(titles[0], _svg(throughput)) + _figure(titles[1], _svg(latency))


def _shard_list(variant: dict) -> list[dict]:
    shards = variant.get("shards")
    return [s for s in shards if isinstance(s, dict)] if isinstance(shards, list) else []


def _shard_chart(variant: dict, title: str) -> str:
    shards = _shard_list(variant)
    chart = _chart("Bar", title, "shard", "count", value_formatter=_short)
    chart.x_labels = [str(s.get("shard", i)) for i, s in enumerate(shards)]
    chart.add("lock retries", [as_number(s.get("lock_retries")) for s in shards])
    chart.add("runs", [as_number(s.get("runs")) for s in shards])
    waits = [as_number(s.get("lock_wait_ms")) for s in shards]
    # pygal's secondary axis fails on a series without any value: draw that one on the left axis.
    has_wait = any(w is not None for w in waits)
    chart.add("lock wait (ms, right axis)" if has_wait else "lock wait (ms)", waits, secondary=has_wait)
    return _figure(title, _svg(chart))


def _comparison_chart(row: dict, variants: list[str]) -> str:
    title = _comparison_title(row)
    values = row.get("values") or {}
    chart = _chart("Bar", title, "variant", _row_label(row), show_x_labels=False)
    chart.x_labels = [_row_label(row)]
    for name in variants:
        chart.add(name, [as_number(values.get(name))])
    return _figure(title, _svg(chart))


# ---------------------------------------------------------------- sections


def _variant_section(variant: dict) -> str:
    metrics = variant.get("metrics") or {}
    name = str(variant.get("name", ""))
    # "shards" is a shard count in some documents and the per-shard list in others.
    count = variant.get("shards") if isinstance(variant.get("shards"), int) else len(_shard_list(variant)) or None
    facts = ", ".join(
        f"{label} {_fmt(value)}"
        for label, value in (
            ("shards", count), ("route", variant.get("route")), ("hot definition", variant.get("hot_definition")),
            ("duration (s)", variant.get("duration_s")),
        )
        if value is not None
    )
    rows = []
    for label, key in _KEY_FIGURES:
        value = metrics.get(key)
        shown = f"{value * 100:.1f} %" if key == "success_rate" and as_number(value) is not None else _fmt(value)
        rows.append([escape(label), shown])
    repeats = variant.get("repeats") if isinstance(variant.get("repeats"), dict) else {}
    load = machine_line(variant.get("machine"), markup=False)
    parts = [f"<h3>Variant: {escape(name)}</h3>", f'<p class="muted">{facts}</p>' if facts else "",
             f'<p class="muted">medians of {_fmt(repeats.get("count"))} repetitions</p>' if repeats else "",
             f"<p>Machine: {escape(load)}</p>" if load else "",
             _table(["figure", "value"], rows, {1})]
    errors = [e for e in variant.get("errors") or [] if isinstance(e, dict)]
    if errors:
        parts.append("<h4>Errors</h4>")
        rows = [[_fmt(e.get("message")), _fmt(e.get("count"))] for e in errors]
        parts.append(_table(["message", "count"], rows, {1}))
    differences = (variant.get("crosscheck") or {}).get("differences") or []
    if differences:
        items = "".join(f'<li class="error">{_fmt(d)}</li>' for d in differences)
        parts.append(f'<h4 class="error">Cross-check differences ({len(differences)})</h4><ul>{items}</ul>')
    titles = _variant_titles(variant)
    parts.append(_timeline_charts(variant, titles))
    parts.append(_shard_chart(variant, titles[2]))
    return "\n".join(p for p in parts if p)


def _comparison_section(scenario: dict) -> str:
    comparison = scenario.get("comparison") or {}
    rows = _comparison_rows(scenario)
    if not rows:
        return ""
    baseline = comparison.get("baseline")
    variants: list[str] = [str(baseline)] if baseline is not None else []
    names = [v.get("name") for v in scenario.get("variants") or []]
    names += [k for r in rows for k in (r.get("values") or {})]
    for name in names:
        if name is not None and str(name) not in variants:
            variants.append(str(name))
    headers = ["metric"] + [h for v in variants for h in (f"{v}", f"{v} ratio")]
    table_rows = []
    for row in rows:
        values, ratios = row.get("values") or {}, row.get("ratios") or {}
        better = {True: " (higher is better)", False: " (lower is better)"}.get(row.get("higher_is_better"), "")
        cells = [escape(_row_label(row) + better)]
        for v in variants:
            ratio = as_number(ratios.get(v))
            cells += [_fmt(values.get(v)), "n/a" if ratio is None else f"{_fmt(ratio)}\u00d7"]
        table_rows.append(cells)
    note = f'<p class="muted">Ratios are relative to the baseline {escape(str(baseline))}.</p>' if baseline else ""
    table = _table(headers, table_rows, set(range(1, len(headers))))
    charts = "".join(_comparison_chart(row, variants) for row in rows)
    return f"<h3>Variant comparison</h3>{note}{table}{charts}"


def _scenario_section(scenario: dict) -> str:
    name = str(scenario.get("name", ""))
    parts = [f"<h2>{escape(name)} {_badge(scenario.get('passed'))}</h2>"]
    for key in ("description", "shows"):
        if scenario.get(key):
            parts.append(f"<p>{escape(str(scenario[key]))}</p>")
    settings = [(label, scenario.get(key)) for label, key in (("smoke", "smoke"), ("duration (s)", "duration_s"))]
    settings.append(("source", scenario.get("source")))
    settings += _flatten(scenario.get("settings") or {})
    rows = [[escape(k), _fmt(v)] for k, v in settings if v is not None and v != [] and k]
    parts += ["<h3>Settings</h3>", _table(["setting", "value"], rows)]
    thresholds = [t for t in scenario.get("thresholds") or [] if isinstance(t, dict)]
    if thresholds:
        rows = [
            [_fmt(t.get("expression")), _fmt(t.get("variant")), _fmt(t.get("value")), _badge(t.get("passed"))]
            for t in thresholds
        ]
        parts += ["<h3>Thresholds</h3>", _table(["expression", "variant", "value", "result"], rows, {2})]
    parts += [_variant_section(v) for v in scenario.get("variants") or [] if isinstance(v, dict)]
    parts.append(_comparison_section(scenario))
    return "<section>" + "\n".join(p for p in parts if p) + "</section>"


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
    summary = _table(["run", ""], [[escape(k), _fmt(v)] for k, v in info if v is not None])
    body = "\n".join(_scenario_section(s) for s in scenarios) or '<p class="muted">No scenarios.</p>'
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>wfctl stress: {escape(heading)}</title><style>{_CSS}</style></head><body>"
        f"<h1>wfctl stress run {_badge(result.get('passed'))}</h1>{summary}\n{body}\n</body></html>\n"
    )
