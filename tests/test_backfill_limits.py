"""``schedules backfill`` over huge ranges: capped before anything starts, streamed, and
times at the ends of the calendar (years 0001 and 9999) as one-line errors or plain slots."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import EXAMPLES, ROOT

SCHEDULED = EXAMPLES / "scheduled.json"


def wfctl(data, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "wfctl", "--data-dir", str(data), *args],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A data directory with the every-minute example and an every-second copy of it."""
    tmp = tmp_path_factory.mktemp("backfill")
    body = json.loads(SCHEDULED.read_text())
    body["id"] = "per-second"
    body["steps"][0]["config"]["schedule"] = "* * * * * *"
    (tmp / "per-second.json").write_text(json.dumps(body))
    data = tmp / "data"
    assert wfctl(data, "init", "--shards", "2").returncode == 0
    assert wfctl(data, "defs", "apply", str(SCHEDULED), str(tmp / "per-second.json")).returncode == 0
    return data


def run_count(data) -> int:
    return len(json.loads(wfctl(data, "list", "--json", "-n", "100000").stdout))


def refused(result, *words):
    assert result.returncode == 2, result.stderr
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    for word in words:
        assert word in result.stderr


def test_six_years_of_seconds_is_refused_before_anything_starts(data):
    before = run_count(data)
    result = wfctl(data, "schedules", "backfill", "per-second", "--from", "2020-01-01", "--to", "2026-01-01")
    refused(result, "more than 10000 slots", "--max-slots")
    assert run_count(data) == before


def test_calendar_ends_are_one_line(data):
    before = run_count(data)
    refused(wfctl(data, "schedules", "backfill", "per-second", "--from", "0001-01-01", "--to", "9999-12-31"),
            "more than 10000 slots")
    refused(wfctl(data, "schedules", "backfill", "scheduled", "--from", "0001-01-01", "--to", "9999-12-31",
                  "--max-slots", "5"), "more than 5 slots")
    refused(wfctl(data, "schedules", "backfill", "per-second", "--from", "9999-12-31", "--to", "0001-01-01"),
            "before")
    assert run_count(data) == before
    # the last seconds of year 9999 are slots like any other (no overflow, none lost to rounding)
    last = wfctl(data, "schedules", "backfill", "per-second", "--from", "9999-12-31T23:59:55Z",
                 "--to", "9999-12-31T23:59:59Z", "--json")
    assert last.returncode == 0, last.stderr
    assert len(json.loads(last.stdout)) == 5


def test_max_slots_sets_the_cap(data):
    window = ("--from", "2021-06-01T00:00:00Z", "--to", "2021-06-01T00:00:10Z")  # 11 slots
    before = run_count(data)
    refused(wfctl(data, "schedules", "backfill", "per-second", *window, "--max-slots", "10"), "more than 10 slots")
    refused(wfctl(data, "schedules", "backfill", "per-second", *window, "--max-slots", "1" + "0" * 20), "--max-slots")
    assert run_count(data) == before
    done = wfctl(data, "schedules", "backfill", "per-second", *window, "--max-slots", "11", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert len(rows) == 11 and all(r["created"] for r in rows)
    assert run_count(data) == before + 11
    again = wfctl(data, "schedules", "backfill", "per-second", *window, "--max-slots", "11")
    assert again.returncode == 0 and "11 slots, 0 started, 11 already ran" in again.stdout
    empty = wfctl(data, "schedules", "backfill", "per-second", "--from", "2021-06-01T00:00:00.2Z",
                  "--to", "2021-06-01T00:00:00.7Z", "--json")
    assert empty.returncode == 0 and json.loads(empty.stdout) == []


def test_backfill_starts_slots_as_they_are_consumed(tmp_path):
    """The library streams: a backfill that may start 20,000 runs has started one after one result."""
    from wfctl.engine import Engine
    from wfctl.errors import InputError
    from wfctl.schedules import schedule_of
    from wfctl.schedules.scheduler import Scheduler

    body = json.loads(SCHEDULED.read_text())
    body["steps"][0]["config"]["schedule"] = "* * * * * *"
    path = tmp_path / "per-second.json"
    path.write_text(json.dumps(body))
    with Engine(tmp_path / "data") as eng:
        definition_id = eng.apply([path])[0].id
        spec = schedule_of(eng.definition(definition_id))
        with pytest.raises(InputError, match="more than 10000 slots"):
            Scheduler(eng).backfill(spec, 1_700_000_000.0, 1_700_000_000.0 + 20_000)
        assert eng.count() == 0
        results = Scheduler(eng).backfill(spec, 1_700_000_000.0, 1_700_000_000.0 + 19_999, max_slots=20_000)
        first = next(results)
        assert first.created and eng.count() == 1
        assert next(results).created and eng.count() == 2
