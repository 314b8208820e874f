"""``wfctl schedules`` and ``wfctl scheduler`` over a real data directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import EXAMPLES, ROOT, wait_until

SCHEDULED = EXAMPLES / "scheduled.json"


def wfctl(data, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "wfctl", "--data-dir", str(data), *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_schedules_commands(tmp_path):
    data = tmp_path / "data"
    assert wfctl(data, "init", "--shards", "2").returncode == 0
    assert wfctl(data, "defs", "apply", str(SCHEDULED)).returncode == 0
    [row] = json.loads(wfctl(data, "schedules", "list", "--json").stdout)
    assert (row["definition_id"], row["schedule"], row["timezone"], row["overlap"]) == ("scheduled", "* * * * *", "UTC", "skip")
    assert len(row["next"]) == 3 and row["paused"] is False and row["counters"]["started"] == 0
    assert wfctl(data, "schedules", "pause", "scheduled").returncode == 0
    assert json.loads(wfctl(data, "schedules", "list", "--json").stdout)[0]["paused"] is True
    assert wfctl(data, "schedules", "resume", "scheduled").returncode == 0
    assert json.loads(wfctl(data, "schedules", "list", "--json").stdout)[0]["paused"] is False
    trig = json.loads(wfctl(data, "schedules", "trigger", "scheduled", "--json").stdout)
    assert trig["action"] == "start" and trig["created"]
    # no worker ran it, so it is unfinished: a second trigger is skipped under the 'skip' policy
    again = json.loads(wfctl(data, "schedules", "trigger", "scheduled", "--json").stdout)
    assert again["action"] == "skip" and again["execution_id"] is None and "unfinished" in again["reason"]
    status = json.loads(wfctl(data, "status", trig["execution_id"], "--json").stdout)
    assert status["slot_time"] and status["fire_lag_ms"] is not None
    window = ("--from", "2026-01-01T10:00:00Z", "--to", "2026-01-01T10:04:30Z")
    first = json.loads(wfctl(data, "schedules", "backfill", "scheduled", *window, "--json").stdout)
    again = json.loads(wfctl(data, "schedules", "backfill", "scheduled", *window, "--json").stdout)
    assert len(first) == 5 and all(r["created"] for r in first)
    assert [r["execution_id"] for r in again] == [r["execution_id"] for r in first]
    assert not any(r["created"] for r in again)
    runs = json.loads(wfctl(data, "list", "--json", "-n", "100").stdout)
    assert sorted(r["slot_time"] for r in runs if r["slot_time"].startswith("2026-01-01")) == [
        f"2026-01-01T10:0{m}:00.000Z" for m in range(5)]
    bad = wfctl(data, "schedules", "backfill", "scheduled", "--from", "yesterday", "--to", "2026-01-01T00:00:00Z")
    assert bad.returncode == 2 and "--from" in bad.stderr
    assert wfctl(data, "schedules", "pause", "nope").returncode != 0


def _per_second(tmp_path):
    body = json.loads(SCHEDULED.read_text())
    body["id"] = "per-second"
    body["steps"][0]["config"]["schedule"] = "* * * * * *"
    path = tmp_path / "per-second.json"
    path.write_text(json.dumps(body))
    return path


def _worker_until(data, condition, *options):
    """Run ``wfctl worker OPTIONS`` until ``condition()`` holds (at most 120 s), then stop it."""
    import signal

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "wfctl", "--data-dir", str(data), "worker", *options],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: condition() or proc.poll() is not None, timeout=120, interval=0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_worker_runs_the_scheduler_unless_told_not_to(tmp_path):
    data = tmp_path / "data"
    assert wfctl(data, "init", "--shards", "2").returncode == 0
    assert wfctl(data, "defs", "apply", str(_per_second(tmp_path))).returncode == 0
    import time

    def up_for(seconds):
        """The worker holds every shard (it is running) and has for ``seconds`` of per-second slots."""
        if not all(s["lease_owner"] for s in json.loads(wfctl(data, "shards", "--json").stdout)):
            return False
        held.setdefault("since", time.monotonic())
        return time.monotonic() - held["since"] >= seconds  # an observation window, not a synchronisation

    held: dict = {}
    _worker_until(data, lambda: up_for(2.0), "--no-scheduler")
    assert json.loads(wfctl(data, "list", "--json").stdout) == []

    def completed_one():
        return any(r["status"] == "completed" for r in json.loads(wfctl(data, "list", "--json").stdout))

    _worker_until(data, completed_one)
    runs = json.loads(wfctl(data, "list", "--json").stdout)
    assert runs and all(r["slot_time"] and r["fire_lag_ms"] >= 0 for r in runs)
    assert any(r["status"] == "completed" for r in runs)
