"""The terminal end report: each scenario leads with what it exists to show, before the
generic run counts (tests/data/stress-smoke-result.json is a real ``stress run all --smoke``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from wfctl.stress.report import format_bytes, format_ms, format_rate, render_report

RESULT = Path(__file__).parent / "data" / "stress-smoke-result.json"


@pytest.fixture(scope="module")
def result() -> dict:
    return json.loads(RESULT.read_text())


@pytest.fixture(scope="module")
def sections(result: dict) -> dict[str, str]:
    """The report's text per scenario, split at each scenario's rule line."""
    console = Console(width=100, record=True, color_system=None, force_terminal=False)
    render_report(console, result)
    text = console.export_text()
    names = [s["name"] for s in result["scenarios"]]
    starts = [re.search(rf"^{re.escape(n)}  (smoke|full)", text, re.M).start() for n in names]
    return {n: text[a:b] for n, a, b in zip(names, starts, starts[1:] + [len(text)])}


def _main(result: dict, name: str) -> dict:
    return next(s for s in result["scenarios"] if s["name"] == name)["variants"][0]["metrics"]


def _before_runs(section: str, title: str) -> str:
    """The lead table titled ``title``; it comes before the generic 'runs' table."""
    at = section.index(title)
    assert at < section.index("\nruns "), f"{title!r} is not the lead"
    return section[at:section.index("\nruns ")]


def test_scheduler_overlap_leads_with_slots_and_fire_lag(result: dict, sections: dict) -> None:
    lead = _before_runs(sections["scheduler-overlap"], "schedule slots and fire lag")
    m = _main(result, "scheduler-overlap")
    row = next(line for line in lead.splitlines() if " ms " in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells == [str(m["slots.expected"]), str(m["slots.fired"]), str(m["slots.duplicates"]),
                     str(m["slots.missed"])] + [f"{format_ms(m[f'fire_lag.{s}'])} ms" for s in ("p50", "p99", "max")]


def test_loop_contention_leads_with_step_latency_by_type(result: dict, sections: dict) -> None:
    lead = _before_runs(sections["loop-contention"], "step latency by type (ms)")
    m = _main(result, "loop-contention")
    types = sorted({k.split(".")[1] for k in m if k.startswith("step_latency.") and k.endswith(".p99")})
    for step_type in types:
        row = next(line for line in lead.splitlines() if line.startswith(f"│ {step_type} "))
        assert format_ms(m[f"step_latency.{step_type}.p99"]) in row


def test_sustained_load_leads_with_target_vs_achieved(result: dict, sections: dict) -> None:
    lead = _before_runs(sections["sustained-load"], "arrivals: target vs achieved")
    m = _main(result, "sustained-load")
    assert re.search(rf"target starts/s +│ +{re.escape(format_rate(m['starts.target_rate']))}/s", lead)
    assert re.search(rf"achieved starts/s +│ +{re.escape(format_rate(m['starts.rate']))}/s", lead)
    assert re.search(rf"late +│ +{m['late']} ", lead) and re.search(rf"dropped +│ +{m['dropped']} ", lead)


def test_payload_pressure_leads_with_bytes_stored_and_rejected(result: dict, sections: dict) -> None:
    lead = _before_runs(sections["payload-pressure"], "payloads: bytes stored and rejected")
    m = _main(result, "payload-pressure")
    assert re.search(rf"bytes stored +│ +{re.escape(format_bytes(m['stored_bytes']))} ", lead)
    assert re.search(rf"starts rejected +│ +{m['rejected']} ", lead) and m["rejected"] > 0


def test_shard_comparison_leads_with_the_side_by_side_ratios(sections: dict) -> None:
    section = sections["shard-comparison"]
    assert section.index("comparison (ratio vs baseline: ") < section.index("\nruns ")
    assert section.count("comparison (ratio vs baseline: ") == 1
