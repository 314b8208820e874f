"""The HTML report of a PostgreSQL stress result: waits by wait event over time per shard, the
comparison's conflicts per 1,000 starts, the server block and the client-vs-server cross-check;
a SQLite result (old or new) draws none of them."""

from __future__ import annotations

import copy
import html
import json
import re

import pytest
from pg_stress_result import SMOKE, TOP_EVENT, pg_result

from wfctl.stress.html import chart_titles, render_html

WAITS = "Waits by wait event over time"
CONFLICTS = "Conflicts per 1,000 starts — shard-comparison"


@pytest.fixture
def result() -> dict:
    return pg_result()


def _variant_section(page: str, name: str) -> str:
    start = page.index(f"<summary>Variant {html.escape(name)}</summary>")
    return page[start:page.index("</details>", start)]


def _figure(page: str, title: str) -> str:
    start = page.index(f"<figure><h4>{html.escape(title)}</h4>")
    return page[start:page.index("</figure>", start)]


def test_a_waits_chart_per_shard_and_the_conflicts_chart(result: dict) -> None:
    titles = chart_titles(result)
    assert [t for t in titles if t.startswith(f"{WAITS} — main")] == [
        f"{WAITS} — main — shard {n}" for n in range(4)]
    assert f"{WAITS} — 1sh/spread/hotrow/ser — shard 0" in titles
    assert titles.index("Headline ratios vs own baselines — shard-comparison") + 1 == titles.index(CONFLICTS)
    page = render_html(result)
    for title in titles:
        assert f"<h4>{html.escape(title)}</h4>" in page
        assert f"<title>{html.escape(title, quote=False)}</title>" in page
    assert page.count("<svg") == len(titles)
    waits = _figure(page, f"{WAITS} — main — shard 0")
    assert TOP_EVENT in waits and "sessions waiting" in waits and "time since start (s)" in waits
    conflicts = _figure(page, CONFLICTS)
    for series in ("conflicts per 1k starts", "deadlocks per 1k starts", "lock waits per 1k starts"):
        assert series in conflicts
    for name in ("1sh/norow/rc", "4sh/exec/hotrow/ser/2srv"):  # less what every variant has ("spread")
        assert f">{name}<" in conflicts


def test_the_server_block_and_the_cross_check_are_tables(result: dict) -> None:
    page = render_html(result)
    main = _variant_section(page, "main")
    assert "serializable isolation, hot rows, 1 server" in main
    server = main[main.index("<h4>Database server</h4>"):]
    assert "412 samples, one every 50 ms" in server
    assert re.search(r'data-label="shard">0</td><td data-label="top wait events \(session-seconds\)">'
                     rf"{TOP_EVENT} 1.25 s<br>", server)
    assert "3 / 0.40" in server  # locks not granted, max / mean
    assert "127.0.0.1:5432/test" in server and "1.2 MB" in server
    disagree = re.search(r"<tr>(?:(?!</tr>).)*DISAGREE(?:(?!</tr>).)*</tr>", server).group(0)
    assert 'class="error"' in disagree and ">deadlocks<" in disagree
    agree = re.search(r"<tr>(?:(?!</tr>).)*>agree<(?:(?!</tr>).)*</tr>", server).group(0)
    assert "error" not in agree
    assert '<li class="error">client vs server: deadlocks' in main  # the harness's difference


def test_the_summary_names_the_servers_and_the_comparison_its_own_baselines(result: dict) -> None:
    page = render_html(result)
    summary = page[page.index('id="summary"'):page.index("</section>")]
    assert "Backend: PostgreSQL, 2 servers" in summary
    assert "<code>127.0.0.1:5433/test</code>: version 15.4, max_connections 100, synchronous_commit on" in summary
    assert "completions/s vs own baselines" in summary
    assert "4sh/def/spread/hotrow/ser (vs 1sh/spread/hotrow/ser)" in page and "1sh/spread/hotrow/ser (baseline)" in page
    assert "its ratio to that variant's own baseline, named in its column header" in page


def test_many_shards_chart_those_that_waited_longest_with_a_note(result: dict) -> None:
    variant = result["scenarios"][0]["variants"][0]
    timeline = variant["server"]["timeline"]
    for n in (4, 5):
        timeline[str(n)] = {TOP_EVENT: [9.0 if n == 5 else 0.0] * 8}
    titles = [t for t in chart_titles(result) if t.startswith(f"{WAITS} — main")]
    assert titles == [f"{WAITS} — main — shard {n}" for n in (5, 0, 1, 2)]
    page = render_html(result)
    assert "Waits of the 4 shards (of 6) that waited longest: shards 5, 0, 1, 2." in page


def test_text_from_the_server_is_escaped(result: dict) -> None:
    variant = result["scenarios"][0]["variants"][0]
    evil = "Lock:<script>alert(1)</script>"
    variant["shards"][0]["server"]["waits"][evil] = 99.0
    variant["server"]["timeline"]["0"][evil] = [5.0] * 8
    variant["server"]["cross_check"][0]["note"] = "<b>bold</b>"
    result["backend"]["servers"][0]["server"] = "<i>host</i>:5432/test"
    page = render_html(result)
    assert "<script>" not in page and "<b>bold" not in page and "<i>host" not in page
    assert html.escape(evil) in page and "&lt;b&gt;bold&lt;/b&gt;" in page


def _without_ids(page: str) -> str:
    """``page`` without pygal's random chart ids."""
    return re.sub(r"chart-[0-9a-f-]{36}", "chart", page)


def test_a_sqlite_result_draws_no_server_charts() -> None:
    old = json.loads(SMOKE.read_text(encoding="utf-8"))
    new = copy.deepcopy(old)
    new["backend"] = {"name": "sqlite", "servers": []}
    for scenario in new["scenarios"]:
        for variant in scenario["variants"]:
            variant.update(isolation=None, hot_rows=None, servers=None, server=None)
    page = render_html(old)
    assert _without_ids(render_html(new)) == _without_ids(page) and chart_titles(new) == chart_titles(old)
    assert not [t for t in chart_titles(old) if t.startswith((WAITS, "Conflicts"))]
    for absent in ("Database server", "Backend:", "own baseline", "Client vs server"):
        assert absent not in page
