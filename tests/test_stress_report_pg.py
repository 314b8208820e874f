"""The terminal end report of a PostgreSQL stress result: the backend's servers, each variant's
isolation and hot rows, the server block (waits, lock waits, cross-check) and the comparison's
own baselines; a SQLite result (old or new) looks as it always did."""

from __future__ import annotations

import copy
import io
import json
import re

import pytest
from pg_stress_result import SMOKE, TOP_EVENT, pg_result
from rich.console import Console

from wfctl.stress.repeat import aggregate
from wfctl.stress.report import render_report

RED, DIM = "\x1b[31m", "\x1b[2m"


def _text(result: dict, width: int = 160) -> str:
    console = Console(width=width, record=True, color_system=None, force_terminal=False, file=io.StringIO())
    render_report(console, result)
    return console.export_text()


def _ansi(result: dict) -> str:
    """The report as a colour terminal gets it (escape codes kept)."""
    out = io.StringIO()
    render_report(Console(width=200, file=out, force_terminal=True, color_system="standard"), result)
    return out.getvalue()


def _section(text: str, name: str) -> str:
    start = re.search(rf"^{re.escape(name)}  (smoke|full)", text, re.M).start()
    following = re.compile(r"^\S+  (smoke|full) ", re.M).search(text, text.index("\n", start))
    return text[start:following.start()] if following else text[start:]


@pytest.fixture
def result() -> dict:
    return pg_result()


def test_the_header_names_the_backend_and_its_servers(result: dict) -> None:
    text = _text(result)
    head = text[:text.index("concurrent-starts  smoke")]
    assert "backend: PostgreSQL, 2 servers" in head
    for server in ("127.0.0.1:5432/test", "127.0.0.1:5433/test"):
        assert f"{server}: version 15.4, max_connections 100, synchronous_commit on" in head


def test_each_variant_names_its_isolation_and_hot_rows(result: dict) -> None:
    text = _text(result)
    assert "variant: main (serializable isolation, hot rows, 1 server)" in _section(text, "concurrent-starts")
    comparison = _section(text, "shard-comparison")
    settings = comparison[comparison.index("variant settings"):comparison.index("\nruns ")]
    assert re.search(r"isolation\s+│\s+read committed\s+│\s+serializable", settings)
    assert re.search(r"hot rows\s+│\s+no\s+│\s+yes", settings)
    assert re.search(r"servers\s+│\s+1\s+│(\s+1\s+│){4}\s+2\s+│", settings)


def test_the_server_block_shows_waits_lock_waits_and_totals(result: dict) -> None:
    section = _section(_text(result), "concurrent-starts")
    block = section[section.index("server during main:"):section.index("thresholds")]
    assert "lock waits 67 (3.44 s), rollbacks 13, deadlocks 0, WAL 1.2 MB; 412 samples every 50 ms" in block
    shard_0 = next(line for line in block.splitlines() if line.strip().startswith("shard 0:"))
    assert shard_0.split(":", 1)[1].strip().startswith(f"{TOP_EVENT} 1.25 s")  # the top wait event first
    assert "lock waits 33 (1.65 s), not granted max 3" in shard_0
    assert [line.split(":")[0].strip() for line in block.splitlines() if line.startswith("  shard ")] == [
        "shard 0", "shard 1", "shard 2", "shard 3"]


def test_a_disagreeing_cross_check_is_red_and_an_agreeing_one_dim(result: dict) -> None:
    lines = [(line, re.sub(r"\x1b\[[0-9;]*m", "", line)) for line in _ansi(result).splitlines()]
    disagree = next(raw for raw, plain in lines if "client vs server, deadlocks: client 3, server 0 (tolerance 0): "
                    "DISAGREE" in plain)
    agree = next(raw for raw, plain in lines if "client vs server, rolled-back transactions: client 13, server 13 "
                 "(tolerance 5): agree" in plain)
    assert disagree.startswith("  " + RED)
    assert agree.startswith("  " + DIM) and RED not in agree
    plain = _text(result)  # the harness's difference is listed as a failed cross-check too
    assert "cross-check FAILED: 1 difference(s)" in plain


def test_the_comparison_gives_each_ratio_against_the_variants_own_baseline(result: dict) -> None:
    comparison = _section(_text(result, width=220), "shard-comparison")
    table = comparison[:comparison.index("variant settings")]
    assert "each ratio vs the variant's own baseline" in table
    header = table[table.index("\n", table.index("own baseline")):table.index("total time")]
    assert header.count("=1") == 2  # 1sh/spread/norow/rc and 1sh/spread/hotrow/ser
    assert "vs 1sh/spread/norow/rc" in header and header.count("vs 1sh/spread/hotrow/ser") == 3
    conflicts = next(line for line in table.splitlines() if "conflicts per 1k" in line)
    # 4sh/def/spread/hotrow/ser has 10 per 1k against 1sh/spread/hotrow/ser's 40 (against 1sh/spread/norow/rc's 0 it would have none)
    assert re.search(r"40\s+×1\.00\s+│\s+0\s+n/a\s+│\s+10\s+×0\.25", conflicts)
    for label in ("deadlocks per 1k starts", "lock waits per 1k starts", "lock wait (s)"):
        assert label in table


def test_a_variant_with_many_shards_lists_those_that_waited_longest(result: dict) -> None:
    variant = result["scenarios"][0]["variants"][0]
    for n in (4, 5):
        shard = copy.deepcopy(variant["shards"][0])
        shard["shard"] = n
        shard["server"]["waits"] = {TOP_EVENT: 9.0 if n == 5 else 0.001}
        variant["shards"].append(shard)
    section = _section(_text(result), "concurrent-starts")
    listed = [line.split(":")[0].strip() for line in section.splitlines() if line.startswith("  shard ")]
    assert listed == ["shard 0", "shard 1", "shard 2", "shard 5"]  # in shard order
    assert "2 more shards waited less" in section


def test_repetitions_name_the_representative_repetition(result: dict) -> None:
    scenario = result["scenarios"][0]
    runs = []
    for k in range(3):
        run = copy.deepcopy(scenario["variants"][0])
        run["duration_s"] = run["metrics"]["duration_s"] = 1.0 + k
        runs.append(run)
    scenario["variants"] = [aggregate(runs)]
    section = _section(_text(result), "concurrent-starts")
    line = next(line for line in section.splitlines() if line.startswith("server during main:"))
    assert line.startswith("server during main: medians: lock waits 67")
    assert "shards and cross-check: repetition 2" in line


def test_a_sqlite_result_shows_no_server_figures_old_or_new() -> None:
    old = json.loads(SMOKE.read_text(encoding="utf-8"))
    assert "backend" not in old
    new = copy.deepcopy(old)
    new["backend"] = {"name": "sqlite", "servers": []}
    for scenario in new["scenarios"]:
        for variant in scenario["variants"]:
            variant.update(isolation=None, hot_rows=None, servers=None, server=None)
    text = _text(old)
    assert _text(new) == text
    for absent in ("backend:", "server during", "variant settings", "own baseline", "client vs server"):
        assert absent not in text
    assert "comparison (ratio vs baseline: 1sh/spread)" in text


def test_a_comparison_whose_baselines_are_all_its_first_variant_reads_as_one_baseline() -> None:
    """Every comparison names its baselines; on SQLite they are all the first variant, and the
    reports then say "vs <first>" as before, not "own baselines"."""
    from wfctl.stress.server_report import per_variant_baselines

    same = {"baseline": "1sh/spread", "baselines": {"1sh/spread": "1sh/spread", "4sh/def/spread": "1sh/spread"}}
    own = {"baseline": "1sh/spread/norow/rc",
           "baselines": {"1sh/spread/norow/rc": "1sh/spread/norow/rc", "1sh/spread/hotrow/ser": "1sh/spread/hotrow/ser"}}
    assert (per_variant_baselines(same), per_variant_baselines(own), per_variant_baselines({})) == (False, True, False)
