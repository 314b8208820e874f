"""The stress-run HTML report: one self-contained page with every chart named."""

from __future__ import annotations

import copy
import html
import re

import pytest

from wfctl.stress.html import chart_titles, render_html

BASE = "1 shard, spread"
SHARDED = "4 shards, route definition, spread"


def _metrics(**overrides: float | int | None) -> dict:
    metrics = {
        "start_latency.p50": 0.3, "start_latency.p99": 1.2, "e2e_latency.p50": 4.0, "e2e_latency.p99": 9.5,
        "started": 5, "completed": 5, "failed": 0, "canceled": 0, "stuck": 0, "dropped": 0, "late": 0,
        "rejected": 0, "completions.rate": 2.38, "starts.rate": 2.38, "success_rate": 1.0,
        "lock_retries": 0, "lock_retries_per_1000": 0.0, "lock_wait_ms": 0.0, "crosscheck.differences": 0,
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
            {"shard": i, "runs": 5, "by_status": {"completed": 5}, "lock_retries": i, "lock_wait_ms": 1.5 * i}
            for i in range(shards)
        ],
        "crosscheck": {"ok": True, "differences": []},
        "slots": None,
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
    assert titles == [
        f"Throughput over time — {BASE}", f"Latency over time — {BASE}", f"Contention per shard — {BASE}",
        f"Throughput over time — {SHARDED}", f"Latency over time — {SHARDED}", f"Contention per shard — {SHARDED}",
        "Variant comparison — throughput (completions/s)", "Variant comparison — start latency p99 (ms)",
    ]
    for title in titles:
        assert f"<h4>{html.escape(title)}</h4>" in page
        assert f"<title>{html.escape(title, quote=False)}</title>" in page
    assert page.count("<svg") == len(titles)


def test_tables(result: dict) -> None:
    page = render_html(result)
    assert "PASS" in page and "shard-comparison" in page
    assert "100.0 %" in page  # success rate
    assert "17000000 bytes is over the 16777216-byte limit" in page  # errors table
    assert "failed == 0" in page  # thresholds table
    assert "1.72×" in page and "n/a" in page  # comparison ratios, a null ratio
    assert "engine.durability" in page  # settings summary
    assert "shards 4, route definition" in page  # variant facts (shard count from the shard list)


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
    one_point["shards"] = [{"shard": 0, "runs": 0, "lock_retries": 0, "lock_wait_ms": None}]
    page = render_html(result)
    for title in chart_titles(result):
        assert html.escape(title) in page

    bare = copy.deepcopy(result)
    for key in ("comparison", "thresholds"):
        del bare["scenarios"][0][key]
    for v in bare["scenarios"][0]["variants"]:
        for key in ("errors", "slots", "crosscheck", "timeline", "shards"):
            v.pop(key, None)
    page = render_html(bare)
    assert "Variant comparison" not in page
    assert len(chart_titles(bare)) == 6

    assert "<html" in render_html({})
    assert chart_titles({}) == []
