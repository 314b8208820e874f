"""``wfctl status`` on a run with a 50,000-row journal: the last N steps by default with a note,
``steps_total`` in JSON, and ``--all-steps --json`` written page by page as valid JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import EXAMPLES, ROOT

PAIRS = 24_999  # steps of two rows (started, completed); with one single-row step first: 49,999 rows
INTERRUPTED = 777  # this pair's step never finished: another step's row follows its started row


def wfctl(data, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "wfctl", "--data-dir", str(data), *args],
                          capture_output=True, text=True, env=env, timeout=300)


def expected_steps() -> list[tuple[str, str]]:
    """(slug, status) of every step, as the journal below is built."""
    steps = [("first", "completed")]
    for i in range(PAIRS):
        steps.append((f"s{i}", "interrupted"))
        if i != INTERRUPTED:
            steps[-1] = (f"s{i}", "completed")
    return steps


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    """A data directory holding one completed run whose journal has 49,999 rows (a pair's
    started row lands on every page boundary of 1,000 rows: seq 1000, 2000, ...)."""
    from wfctl.engine import Engine
    from wfctl.store import JournalRow
    from wfctl.store.base import StepCommit

    data = tmp_path_factory.mktemp("status") / "data"
    with Engine(data) as eng:
        started = eng.start(str(EXAMPLES / "hello.json"), {"name": "big"})
        store = eng.shard_store(started.shard)
        generation = store.acquire_lease("test", 60, now=eng.clock())
        rows = [JournalRow("first", "log", "completed", started_at=1.0, finished_at=1.5)]
        for i in range(PAIRS):
            rows.append(JournalRow(f"s{i}", "action", "started", started_at=10.0 + i))
            if i != INTERRUPTED:
                rows.append(JournalRow(f"s{i}", "action", "completed", port="success", output={"i": i},
                                       finished_at=10.5 + i))
        if INTERRUPTED < PAIRS:
            rows.insert(2 + 2 * INTERRUPTED, JournalRow("retry", "log", "completed", finished_at=2.0))
        commit = StepCommit(started.execution_id, "completed", None, None, journal=rows, output={"done": True})
        assert store.commit_steps(generation, [commit], now=eng.clock()) == []
        assert store.journal_count(started.execution_id) == len(rows)
        assert store.journal_page(started.execution_id, after_seq=999, limit=2)[0].status == "started"
        store.release_lease("test", generation)
    expected = expected_steps()
    expected.insert(1 + INTERRUPTED + 1, ("retry", "completed"))
    return data, started.execution_id, expected


def test_status_shows_the_last_steps_with_a_note(big_run):
    data, eid, expected = big_run
    result = wfctl(data, "status", eid)
    assert result.returncode == 0, result.stderr
    assert f"50 of {len(expected)} steps shown; --all-steps for all" in result.stdout
    assert expected[-1][0] in result.stdout and f"│ {len(expected)} " in result.stdout
    assert f"s{PAIRS - 51} " not in result.stdout  # a step before the last 50 is not listed


def test_status_json_has_steps_total_and_the_last_steps(big_run):
    data, eid, expected = big_run
    doc = json.loads(wfctl(data, "status", eid, "--json").stdout)
    assert doc["steps_total"] == len(expected) and doc["status"] == "completed"
    assert [(s["slug"], s["status"]) for s in doc["steps"]] == expected[-50:]
    last = doc["steps"][-1]
    assert last["output"] == {"i": PAIRS - 1} and last["started_at"] and last["finished_at"]
    three = json.loads(wfctl(data, "status", eid, "--json", "--steps", "3").stdout)
    assert [(s["slug"], s["status"]) for s in three["steps"]] == expected[-3:]


def test_status_all_steps_json_is_every_step(big_run):
    data, eid, expected = big_run
    result = wfctl(data, "status", eid, "--all-steps", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["steps_total"] == len(doc["steps"]) == len(expected)
    assert [(s["slug"], s["status"]) for s in doc["steps"]] == expected
    # a started row folded into its result across a page boundary keeps its start time
    step = doc["steps"][500]
    assert step["slug"] == "s499" and step["started_at"] is not None and step["finished_at"] is not None


def test_library_status_options(big_run):
    from wfctl.engine import Engine
    from wfctl.errors import InputError

    data, eid, expected = big_run
    with Engine(data) as eng:
        tail = eng.status(eid, 10)
        assert tail["steps_total"] == len(expected) and len(tail["steps"]) == 10
        streamed = eng.status(eid, stream=True)
        assert not isinstance(streamed["steps"], list)
        assert [(s["slug"], s["status"]) for s in streamed["steps"]] == expected
        assert len(eng.status(eid)["steps"]) == len(expected)
        assert len(eng.status(eid, 10**9)["steps"]) == len(expected)
        for bad in (0, -1, 10**20, 2.5):
            with pytest.raises(InputError, match="steps"):
                eng.status(eid, bad)


def test_status_json_of_a_short_run_is_unchanged_in_shape(tmp_path):
    data = tmp_path / "data"
    started = wfctl(data, "start", str(EXAMPLES / "hello.json"), "--wait", "--timeout", "60", "--json")
    assert started.returncode == 0, started.stderr
    eid = json.loads(started.stdout)["execution_id"]
    for args in ((), ("--all-steps",)):
        doc = json.loads(wfctl(data, "status", eid, "--json", *args).stdout)
        assert doc["steps_total"] == len(doc["steps"]) > 0 and doc["output"]
    text = wfctl(data, "status", eid).stdout
    assert "steps shown" not in text


def test_start_wait_shows_the_last_steps_of_a_long_run(tmp_path):
    """`start --wait` prints the run's last 50 steps and steps_total, not its whole journal."""
    definition = tmp_path / "counting.json"
    definition.write_text(json.dumps({"id": "counting", "name": "Counting", "steps": [
        {"stepSlug": "start", "name": "Start", "stepType": "start", "nextSteps": {"success": "each"}},
        {"stepSlug": "each", "name": "Each", "stepType": "loop",
         "config": {"items": "{{input.items}}"}, "nextSteps": {"loop": "note", "done": "end"}},
        {"stepSlug": "note", "name": "Note", "stepType": "action",
         "config": {"type": "log", "parameters": {"message": "{{loop.item}}"}},
         "nextSteps": {"success": "each"}},
        {"stepSlug": "end", "name": "End", "stepType": "output", "config": {"mapping": {"ok": True}}}]}))
    proc = wfctl(tmp_path / "data", "start", str(definition), "--input", json.dumps({"items": list(range(80))}),
                 "--wait", "--json")
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert status["status"] == "completed"
    assert status["steps_total"] > 160 and len(status["steps"]) == 50
    assert status["steps"][-1]["slug"] == "end"
