"""The stress-run HTML report: one self-contained page with every chart named."""

from __future__ import annotations

import copy
import html
import json
import re
from pathlib import Path

import pytest

from wfctl.stress.html import chart_titles, render_html
from wfctl.stress.report import format_bytes, format_ms, format_rate

BASE = "1 shard, spread"
SHARDED = "4 shards, route definition, spread"


def _metrics(**overrides: float | int | None) -> dict:
    metrics = {
        "start_latency.p50": 0.3, "start_latency.p99": 1.2, "e2e_latency.p50": 4.0, "e2e_latency.p99": 9.5,
        "started": 5, "completed": 5, "failed": 0, "canceled": 0, "stuck": 0, "dropped": 0, "late": 0,
        "rejected": 0, "completions.rate": 2.38, "starts.rate": 2.38, "success_rate": 1.0,
        "retries": 0, "retries_per_1000": 0.0, "retries.lock_busy": 0, "retries_per_1000.lock_busy": 0.0,
        "wait_ms": 0.0, "crosscheck.differences": 0,
    }
    metrics.update(overrides)
    return metrics


def _variant(name: str, shards: int, **metrics: float | int | None) -> dict:
    return {
        "name": name, "route": "definition", "hot_definition": False, "duration_s": 2.1,
        "metrics": _metrics(**metrics),
        "errors": [],
        "timeline": {
            "interval_s": 0.5,
            "points": [
                {"t": 0.0, "starts": 5, "completions": 3, "start_latency_p50": 0.3, "start_latency_p99": 1.2,
                 "e2e_latency_p50": 4.0, "e2e_latency_p99": 9.0},
                {"t": 0.5, "starts": 0, "completions": 2, "start_latency_p50": None, "start_latency_p99": None,
                 "e2e_latency_p50": 5.0, "e2e_latency_p99": 9.5},
            ],
        },
        "shards": [
            {"shard": i, "runs": 5, "by_status": {"completed": 5}, "retries": {"lock_busy": i},
             "wait_ms": {"lock_busy": 1.5 * i}}
            for i in range(shards)
        ],
        "crosscheck": {"ok": True, "differences": []},
        "slots": None,
        "samples": [{"t": 0.25, "in_flight": 3, "queue_depth": 2}, {"t": 0.5, "in_flight": 0, "queue_depth": 0}],
    }


@pytest.fixture
def result() -> dict:
    """A trimmed copy of the documented example result, with two variants."""
    base = _variant(BASE, 1)
    base["errors"] = [{"message": "input of run 0-abc: 17000000 bytes is over the 16777216-byte limit", "count": 2}]
    return {
        "schema": "wfctl.stress.result/1",
        "wfctl_version": "0.1.0",
        "created_at": "2026-11-24T15:00:00.000Z",
        "command": ["wfctl", "stress", "run", "shard-comparison", "--smoke"],
        "machine": {"cpus": 2, "python": "3.11.2", "sqlite": "3.40.1", "platform": "Linux-6.1-x86_64"},
        "passed": True,
        "exit_code": 0,
        "scenarios": [{
            "name": "shard-comparison",
            "description": "The same workload on 1 shard and on N ...",
            "shows": "Total and average start time ...",
            "smoke": True,
            "settings": {
                "stuck_after_s": 10.0,
                "engine": {"shards": 4, "route": "definition", "durability": "normal", "workers": 2},
                "workload": {"model": "closed", "clients": 5, "total": 5, "rate": None, "stages": []},
                "definitions": 4,
            },
            "duration_s": 12.3,
            "passed": True,
            "variants": [base, _variant(SHARDED, 4, **{"completions.rate": 4.1})],
            "comparison": {
                "baseline": BASE,
                "rows": [
                    {"metric": "completions.rate", "label": "throughput (completions/s)", "higher_is_better": True,
                     "values": {BASE: 2.38, SHARDED: 4.1}, "ratios": {BASE: 1.0, SHARDED: 1.72}},
                    {"metric": "start_latency.p99", "label": "start latency p99 (ms)", "higher_is_better": False,
                     "values": {BASE: 1.2, SHARDED: None}, "ratios": {BASE: 1.0, SHARDED: None}},
                ],
            },
            "thresholds": [
                {"expression": "failed == 0", "metric": "failed", "variant": BASE, "value": 0, "passed": True,
                 "source": "scenario"},
            ],
        }],
    }


def test_one_self_contained_document(result: dict) -> None:
    page = render_html(result)
    assert page.lower().startswith("<!doctype html>")
    assert page.count("<html") == 1 and page.rstrip().endswith("</html>")
    assert "<?xml" not in page
    assert not re.search(r"<script\b[^>]*\bsrc", page, re.I)
    assert not re.search(r"""(?:href|src)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert not re.search(r"@import|url\(\s*['\"]?(?:https?:)?//", page, re.I)
    assert "<link" not in page.lower()


def test_every_chart_is_named_in_a_heading_and_an_svg_title(result: dict) -> None:
    page = render_html(result)
    titles = chart_titles(result)
    per_variant = ("Throughput over time", "In-flight runs and queue depth over time", "Start latency over time",
                   "End-to-end latency over time", "Retries per shard")
    assert titles == [f"Headline ratios vs {BASE} — shard-comparison"] + [
        f"{kind} — {name}" for name in (BASE, SHARDED) for kind in per_variant]
    for title in titles:
        assert f"<h4>{html.escape(title)}</h4>" in page
        assert f"<title>{html.escape(title, quote=False)}</title>" in page
    assert page.count("<svg") == len(titles)


def test_tables(result: dict) -> None:
    page = render_html(result)
    assert "PASS" in page and "shard-comparison" in page
    assert "100%" in page  # success rate
    assert "17000000 bytes is over the 16777216-byte limit" in page  # errors table
    assert "failed == 0" in page  # thresholds table
    assert "×1.72" in page and "n/a" in page  # comparison ratios, a null ratio
    assert "engine.durability" in page  # settings summary
    assert "4 shards, route definition" in page  # variant facts (shard count from the shard list)


def test_failures_and_crosscheck_differences_are_highlighted(result: dict) -> None:
    scenario = result["scenarios"][0]
    scenario["passed"] = False
    scenario["thresholds"][0]["passed"] = False
    scenario["variants"][1]["crosscheck"] = {"ok": False, "differences": ["run 7: completed in shard, failed in events"]}
    page = render_html(result)
    assert "FAIL" in page
    assert '<li class="error">run 7: completed in shard, failed in events</li>' in page


def test_text_from_the_result_is_escaped(result: dict) -> None:
    scenario = result["scenarios"][0]
    name = "evil <b>& variant"
    scenario["variants"][1]["name"] = name
    scenario["thresholds"][0]["variant"] = name
    scenario["comparison"]["rows"][0]["values"] = {BASE: 2.38, name: 4.1}
    scenario["comparison"]["rows"][0]["ratios"] = {BASE: 1.0, name: 1.72}
    scenario["description"] = "<script>alert(1)</script>"
    page = render_html(result)
    assert "<b>&" not in page and "<script>alert" not in page
    assert "evil &lt;b&gt;&amp; variant" in page
    for title in chart_titles(result):
        assert html.escape(title) in page


def test_empty_and_minimal_inputs(result: dict) -> None:
    variant = result["scenarios"][0]["variants"][0]
    variant["timeline"] = {"interval_s": 1.0, "points": []}
    variant["shards"] = []
    variant["metrics"] = {}
    one_point = result["scenarios"][0]["variants"][1]
    one_point["timeline"]["points"] = one_point["timeline"]["points"][1:]
    one_point["shards"] = [{"shard": 0, "runs": 0, "retries": {}, "wait_ms": None}]
    page = render_html(result)
    for title in chart_titles(result):
        assert html.escape(title) in page

    bare = copy.deepcopy(result)
    for key in ("comparison", "thresholds"):
        del bare["scenarios"][0][key]
    for v in bare["scenarios"][0]["variants"]:
        for key in ("errors", "slots", "crosscheck", "timeline", "shards", "samples"):
            v.pop(key, None)
    page = render_html(bare)
    assert "Headline ratios" not in page
    assert len(chart_titles(bare)) == 8  # no samples: no in-flight chart

    assert "<html" in render_html({})
    assert chart_titles({}) == []


# ---------------------------------------------------------------- a report that tells the story (real result)

REAL = Path(__file__).parent / "data" / "stress-smoke-result.json"


@pytest.fixture
def real() -> dict:
    """A trimmed ``wfctl stress run all --smoke`` result (every packaged scenario)."""
    return json.loads(REAL.read_text())


def _sections(page: str) -> dict[str, str]:
    """Each scenario's <section>, by scenario name."""
    out = {}
    for body in re.findall(r"<section>(.*?)</section>", page, re.S):
        match = re.match(r'<h2 id="[^"]+">([^<]+?) <span', body)
        if match:
            out[html.unescape(match.group(1))] = body
    return out


def _lead(section: str) -> str:
    return re.search(r'<div class="lead">(.*?)</div>\s*<h3>Thresholds', section, re.S).group(1)


def _scenario(result: dict, name: str) -> dict:
    return next(s for s in result["scenarios"] if s["name"] == name)


def _main(result: dict, name: str) -> dict:
    return _scenario(result, name)["variants"][0]["metrics"]


def test_the_page_opens_with_a_summary_then_contents(real: dict) -> None:
    scenario = real["scenarios"][0]
    scenario["thresholds"][0].update(passed=False, expression="start_latency.p99 < 0.001s", metric="start_latency.p99",
                                     value=2.5)
    real["passed"], real["exit_code"] = False, 99
    page = render_html(real)
    summary_at, contents_at = page.index('id="summary"'), page.index('<nav aria-label="Contents">')
    first_scenario = page.index('<h2 id="s-')
    assert summary_at < contents_at < first_scenario
    summary = page[summary_at:contents_at]
    checked = sum(len(s["thresholds"]) for s in real["scenarios"])
    assert f"<strong>FAIL</strong> (exit code 99): {checked} thresholds checked, 1 failed." in summary
    assert "Thresholds failed" in summary and "<code>start_latency.p99 &lt; 0.001s</code>, actual 0.0025 s" in summary
    lines = re.findall(r"<li><a href=\"#(s-[^\"]+)\">", summary)
    assert lines == [f"s-{s['name']}" for s in real["scenarios"]]
    for name in (s["name"] for s in real["scenarios"]):  # the contents link every scenario, and the anchors exist
        assert f'<li><a href="#s-{name}">{name}</a></li>' in page[contents_at:first_scenario]
        assert f'id="s-{name}"' in page
    m = _main(real, "scheduler-overlap")
    assert (f"fire lag p99 {format_ms(m['fire_lag.p99'])} ms; slots: {m['slots.expected']} expected, "
            f"{m['slots.fired']} fired, {m['slots.duplicates']} duplicates, {m['slots.missed']} missed") in summary
    m = _main(real, "sustained-load")
    assert f"target {format_rate(m['starts.target_rate'])}/s, achieved {format_rate(m['starts.rate'])}/s" in summary
    m = _main(real, "payload-pressure")
    assert f"{format_bytes(m['stored_bytes'])} stored, {m['rejected']} starts rejected" in summary


def test_each_scenario_leads_with_what_it_exists_to_show(real: dict) -> None:
    page = render_html(real)
    sections = _sections(page)
    assert set(sections) == {s["name"] for s in real["scenarios"]}
    for name, section in sections.items():  # the lead comes before the thresholds and the variants
        assert section.index('<div class="lead">') < section.index("<h3>Thresholds") < section.index("Variant ")

    lead, m = _lead(sections["scheduler-overlap"]), _main(real, "scheduler-overlap")
    for header in ("fire lag p50", "fire lag p99", "slots expected", "fired", "duplicates", "missed"):
        assert f">{header}</th>" in lead
    for stat in ("p50", "p95", "p99", "max"):
        assert f"{format_ms(m[f'fire_lag.{stat}'])} ms" in lead

    lead, m = _lead(sections["loop-contention"]), _main(real, "loop-contention")
    types = sorted({k.split(".")[1] for k in m if k.startswith("step_latency.") and k.endswith(".p99")})
    assert len(types) >= 3
    for step_type in types:
        assert f'data-label="step type">{step_type}</td>' in lead
        assert f"{format_ms(m[f'step_latency.{step_type}.p99'])} ms" in lead
    assert "<h4>Step latency by type — loop-contention</h4>" in lead

    lead, m = _lead(sections["sustained-load"]), _main(real, "sustained-load")
    for header in ("target starts/s", "achieved starts/s", "late", "dropped"):
        assert f">{header}</th>" in lead
    assert f"{format_rate(m['starts.target_rate'])}/s" in lead and f"{format_rate(m['starts.rate'])}/s" in lead

    lead, m = _lead(sections["payload-pressure"]), _main(real, "payload-pressure")
    assert m["rejected"] > 0
    assert f'data-label="bytes stored">{format_bytes(m["stored_bytes"])}</td>' in lead
    assert f'data-label="starts rejected">{m["rejected"]}</td>' in lead

    lead = _lead(sections["shard-comparison"])
    baseline = _scenario(real, "shard-comparison")["comparison"]["baseline"]
    assert lead.index(f"<h4>Headline ratios vs {baseline} — shard-comparison</h4>") < lead.index("<table")
    assert chart_titles(real)[chart_titles(real).index(f"Headline ratios vs {baseline} — shard-comparison") + 1] \
        .startswith("Throughput over time — ")


def test_every_number_carries_its_unit(real: dict) -> None:
    sections = _sections(render_html(real))
    section, m = sections["concurrent-starts"], _main(real, "concurrent-starts")
    cells = dict(re.findall(r'data-label="figure">([^<]+)</td><td class="num" data-label="value">(.*?)</td>', section))
    assert cells["start latency p99"] == f"{format_ms(m['start_latency.p99'])} ms"
    assert cells["completions/s"] == f"{format_rate(m['completions.rate'])}/s"
    assert cells["success rate"].endswith("%")
    assert cells["retries (lock busy)"].endswith(" per 1,000 starts")  # SQLite's one cause, named
    assert cells["waited (lock busy)"].endswith(" ms")
    assert cells["stored in shards"] == format_bytes(m["stored_bytes"])


def test_thresholds_are_shown_in_their_own_unit(real: dict) -> None:
    scenario = _scenario(real, "sustained-load")
    item = next(t for t in scenario["thresholds"] if t["expression"] == "e2e_latency.p95 < 5s")
    section = _sections(render_html(real))["sustained-load"]
    row = re.search(r"<tr><td[^>]*><code>e2e_latency.p95 &lt; 5s</code></td>.*?</tr>", section).group(0)
    assert 'data-label="limit">&lt; 5 s</td>' in row
    assert f'data-label="actual">{item["value"] / 1000:,.4g} s</td>' in row and " ms</td>" not in row


def test_comparison_cells_are_coloured_better_or_worse(real: dict) -> None:
    scenario = _scenario(real, "shard-comparison")
    baseline = scenario["comparison"]["baseline"]
    section = _sections(render_html(real))["shard-comparison"]
    coloured = 0
    for row in scenario["comparison"]["rows"]:
        label = row["label"]
        html_row = re.search(rf"<tr><td data-label=\"metric\">{re.escape(html.escape(label))}[ <].*?</tr>", section).group(0)
        for name, ratio in row["ratios"].items():
            if name == baseline or ratio is None or row["higher_is_better"] is None or f"{ratio:.2f}" == "1.00":
                continue
            verdict = "better" if (ratio > 1) == row["higher_is_better"] else "worse"
            assert f'<td class="num cmp {verdict}" data-label="{html.escape(name)}">' in html_row
            coloured += 1
    assert coloured >= 10


def test_latency_charts_separate_and_counts_never_in_scientific_notation(result: dict) -> None:
    variant = result["scenarios"][0]["variants"][0]
    for point in variant["timeline"]["points"]:
        point["starts"], point["completions"] = 2_500_000, 1_250_000
    variant["samples"] = [{"t": 0.25, "in_flight": 1_200_000, "queue_depth": 900_000}]
    variant["shards"][0]["retries"] = {"lock_busy": 3_000_000}
    page = render_html(result)
    figures = dict(re.findall(r"<figure><h4>([^<]+)</h4>(.*?)</figure>", page, re.S))
    for title, svg in figures.items():
        labels = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
        assert not [t for t in labels if re.search(r"\de[+-]?\d", t)], title
    throughput = figures[html.escape(f"Throughput over time — {BASE}")]
    assert ">5,000,000</text>" in throughput  # 2,500,000 per 0.5 s interval
    for kind, label in (("Start", "start latency"), ("End-to-end", "end-to-end latency")):
        svg = figures[html.escape(f"{kind} latency over time — {BASE}")]
        assert label in svg and "(ms)" in svg and "starts/s" not in svg
    in_flight = figures[html.escape(f"In-flight runs and queue depth over time — {BASE}")]
    assert "in-flight runs" in in_flight and "queue depth" in in_flight and ">1,200,000</text>" in in_flight
    shard_chart = figures[html.escape(f"Retries per shard — {BASE}")]
    assert set(re.findall(r'class="series serie-(\d+)', shard_chart)) == {"0"}  # one scale on one axis
    assert "retries (lock busy)" in shard_chart


def test_several_retry_causes_are_shown_each(result: dict) -> None:
    variant = result["scenarios"][0]["variants"][0]
    variant["metrics"].update({"retries": 12, "retries_per_1000": 2400.0, "retries.serialization_failure": 10,
                               "retries_per_1000.serialization_failure": 2000.0, "retries.deadlock": 2,
                               "retries_per_1000.deadlock": 400.0})
    del variant["metrics"]["retries.lock_busy"], variant["metrics"]["retries_per_1000.lock_busy"]
    variant["shards"][0].update(retries={"serialization_failure": 10, "deadlock": 2},
                                wait_ms={"serialization_failure": 40.0, "deadlock": 8.0})
    page = render_html(result)
    section = page[page.index(f"<summary>Variant {html.escape(BASE)}"):page.index(f"<summary>Variant {html.escape(SHARDED)}")]
    cells = dict(re.findall(r'data-label="figure">([^<]+)</td><td class="num" data-label="value">(.*?)</td>', section))
    assert cells["retries"] == "2,400 per 1,000 starts"  # several causes: the total, then each
    assert cells["retries (serialization failure)"] == "2,000 per 1,000 starts"
    assert cells["retries (deadlock)"] == "400 per 1,000 starts"
    assert 'data-label="retries">12<br><span class="muted">serialization failure 10</span>' in section
    figures = dict(re.findall(r"<figure><h4>([^<]+)</h4>(.*?)</figure>", section, re.S))
    chart = figures[html.escape(f"Retries per shard — {BASE}")]
    assert "serialization failure" in chart and "deadlock" in chart
