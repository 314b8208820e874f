"""`wfctl list` and `wfctl schedules list` are readable at 100 columns: an execution id is never
wrapped over lines, no line is wider than the terminal, durations (fire lag, run time, time to the
next slot) read as durations."""

from __future__ import annotations

import json
import re

import pytest

from helpers import EXAMPLES, wfctl, wfctl_env

DURATION = r"\d+(\.\d)? (ms|s|min|h|d)( \d+ (s|min|h))?"


def at(columns: int) -> dict:
    return wfctl_env(COLUMNS=str(columns))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A data directory with finished runs of two definitions, one of them started for a schedule slot."""
    data = tmp_path_factory.mktemp("readable") / "data"
    for name in ("Ada", "Grace Hopper"):
        assert wfctl(data, "start", EXAMPLES / "hello.json", "--input", json.dumps({"name": name})).returncode == 0
    assert wfctl(data, "defs", "apply", EXAMPLES / "scheduled.json").returncode == 0
    assert wfctl(data, "schedules", "trigger", "scheduled").returncode == 0
    assert wfctl(data, "worker", "--drain").returncode == 0
    return data


@pytest.mark.parametrize("columns", [100, 80, 140])
def test_list_shows_every_execution_id_whole_on_one_line(data, columns):
    runs = json.loads(wfctl(data, "list", "--json").stdout)
    assert len(runs) == 3 and any(r["fire_lag_ms"] is not None for r in runs)
    proc = wfctl(data, "list", env=at(columns))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert all(len(line) <= columns for line in lines), proc.stdout
    for run in runs:
        rows = [line for line in lines if run["execution_id"] in line]
        assert len(rows) == 1 and run["status"] in rows[0], proc.stdout


def test_list_at_100_columns_shows_fire_lag_and_run_time_as_durations(data):
    runs = {r["execution_id"]: r for r in json.loads(wfctl(data, "list", "--json").stdout)}
    proc = wfctl(data, "list", env=at(100))
    lines = proc.stdout.splitlines()
    header = lines[0]
    assert "fire lag" in header and "took" in header, proc.stdout
    for line in lines[1:-1]:
        run = runs[line.split()[0]]
        lag = line[header.index("fire lag"):header.index("took")].strip()
        took = line[header.index("took"):].strip()
        assert re.fullmatch(DURATION, took), line
        if run["fire_lag_ms"] is None:
            assert lag == "", line
        else:
            assert re.fullmatch(DURATION, lag), line
            assert "ms" not in lag or abs(float(lag.split()[0]) - run["fire_lag_ms"]) < 1, (lag, run["fire_lag_ms"])
    assert re.search(r"3 run\(s\); not shown at 100 columns: .*\(see --json\)", lines[-1]), proc.stdout


def test_list_at_a_wide_terminal_shows_every_column(data):
    proc = wfctl(data, "list", env=at(220))
    header = proc.stdout.splitlines()[0].split()
    assert header[:3] == ["execution", "id", "definition"] and "version" in header and "output" in header
    assert proc.stdout.splitlines()[-1] == "3 run(s)"


def test_schedules_list_fits_100_columns_with_the_next_slot_as_a_time_and_a_duration(data):
    proc = wfctl(data, "schedules", "list", env=at(100))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert all(len(line) <= 100 for line in lines), proc.stdout
    row = next(line for line in lines if line.startswith("scheduled "))
    assert re.search(r"\d\d-\d\d \d\d:\d\d:\d\d \(in " + DURATION + r"\)", row), proc.stdout
    assert "…" not in row and "* * * * *" in row and "UTC" in row and "skip" in row


@pytest.mark.parametrize("seconds, text", [
    (0.0034, "3.4 ms"), (0.012, "12 ms"), (0.5, "500 ms"), (1.234, "1.2 s"), (42.4, "42 s"),
    (125, "2 min 5 s"), (180, "3 min"), (1500, "25 min"), (12000, "3 h 20 min"), (7200, "2 h"),
    (200000, "2 d 7 h"), (-0.012, "-12 ms"),
])
def test_format_seconds(seconds, text):
    from wfctl.durations import format_seconds

    assert format_seconds(seconds) == text
