"""``wfctl worker --metrics-port`` and ``wfctl scheduler --metrics-port``: a real process on a real data
directory (SQLite files, a PostgreSQL deployment), scraped with httpx during and after real runs and parsed
with prometheus_client's parser; the values are the shard's own counts (``wfctl shards --json``, the runs
and their journals)."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import threading
import time
from contextlib import contextmanager

import httpx
import pytest
from helpers import EXAMPLES, refused, step, wait_until, wfctl, wfctl_argv, wfctl_env, write_definition
from pg import pg_project
from wfctl.engine import Engine
from wfctl.store import DataDir

DEADLINE_S = 180.0
ELSEWHERE = "elsewhere:1:test"  # a lease owner on another machine


@pytest.fixture(params=["sqlite", "postgresql"])
def data(request, tmp_path):
    """A data directory with 2 shards, runs routed by execution id, on each backend."""
    path = tmp_path / "data"
    if request.param == "sqlite":
        assert wfctl(path, "init", "--shards", "2", "--route", "execution").returncode == 0
        yield path
    else:
        with pg_project(path, shards=2, tag="metrics", route="execution") as made:
            yield made


class Served:
    """A wfctl process serving metrics; ``url`` is the address it printed on stderr."""

    def __init__(self, data, *args):
        self.proc = subprocess.Popen(wfctl_argv(data, *args), env=wfctl_env(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True).start()
        wait_until(lambda: self._url() or self.proc.poll() is not None, timeout=DEADLINE_S)
        self.url = self._url()
        assert self.url, self.lines

    def _url(self) -> str | None:
        found = [m.group(1) for m in (re.fullmatch(r"metrics on (http://127\.0\.0\.1:\d+/metrics)\n", line)
                                      for line in list(self.lines)) if m]
        return found[0] if found else None

    def scrape(self) -> dict[tuple, float]:
        """Every sample: ``(name, (label, value)...)`` -> value."""
        from prometheus_client.parser import text_string_to_metric_families  # not at import: see metrics.py

        text = httpx.get(self.url, timeout=60).text
        return {(s.name, *sorted(s.labels.items())): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        assert self.proc.returncode == 0, "".join(self.lines)
        assert not any("Traceback" in line for line in self.lines), "".join(self.lines)


@contextmanager
def served(data, *args):
    process = Served(data, *args)
    try:
        yield process
    finally:
        if process.proc.poll() is None:
            process.stop()


def value(samples, name, **labels):
    return samples.get((name, *sorted(labels.items())))


def _shards(data) -> list[dict]:
    out = wfctl(data, "shards", "--json", "--no-check")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _contention_matches(samples, rows) -> bool:
    return all(value(samples, "wfctl_shard_retries_total", shard=str(row["shard"]), cause=cause) == count
               and value(samples, "wfctl_shard_wait_seconds_total", shard=str(row["shard"]), cause=cause)
               == pytest.approx(row["wait_ms"][cause] / 1000.0)
               for row in rows for cause, count in row["retries"].items())


def _definitions(tmp_path, data) -> None:
    doomed = write_definition(tmp_path, "doomed", [
        step("start", "start", {}, {"success": "boom"}),
        step("boom", "action", {"type": "fail", "parameters": {"message": "always"},
                                "retryPolicy": {"maxRetries": 0, "backoffMs": 0}})])
    assert wfctl(data, "defs", "apply", str(EXAMPLES / "hello.json"), str(EXAMPLES / "retries.yaml"),
                 str(doomed)).returncode == 0


def test_worker_metrics_are_the_shards_own_counts(data, tmp_path):
    _definitions(tmp_path, data)
    held = DataDir.open(data, create=False).open_shard(1)  # shard 1 is held elsewhere: its runs wait
    generation = held.acquire_lease(ELSEWHERE, 600, now=time.time())
    started = time.time()
    with Engine(data, create=False) as engine:
        runs = {"retries": [engine.start("retries", {"items": [1, -1]}) for _ in range(2)],
                "doomed": [engine.start("doomed", {})], "hello": []}
        while len(runs["hello"]) < 8 or {r.shard for r in runs["hello"]} != {0, 1}:
            runs["hello"].append(engine.start("hello", {"name": "x"}))
            assert len(runs["hello"]) < 100
    waiting = sum(r.shard == 1 for rs in runs.values() for r in rs)
    hello_0 = sum(r.shard == 0 for r in runs["hello"])
    last_start = time.time()
    try:
        with served(data, "worker", "--metrics-port", "0", "--processes", "2", "--no-scheduler") as worker:
            # during: shard 0's runs end, shard 1's wait for its lease
            def shard_0_done():
                asked, s = time.time(), worker.scrape()
                return (value(s, "wfctl_shard_queue_depth", shard="0") == 0
                        and value(s, "wfctl_runs_completed_total", definition="hello") == hello_0
                        and value(s, "wfctl_shard_lease_held", shard="0") == 1 and (asked, s))

            asked, samples = wait_until(shard_0_done, timeout=DEADLINE_S, interval=0.2) or (0, None)
            assert samples, worker.lines
            scraped = time.time()
            rows = _shards(data)
            assert value(samples, "wfctl_shard_queue_depth", shard="1") == rows[1]["queue_depth"] == waiting
            assert value(samples, "wfctl_shard_ready_runs", shard="1") == waiting
            # the oldest waiting run was made between the first start and the last
            assert asked - last_start <= value(samples, "wfctl_shard_oldest_ready_age_seconds", shard="1") \
                <= scraped - started
            assert (value(samples, "wfctl_shard_lease_held", shard="1"),
                    value(samples, "wfctl_shard_lease_generation", shard="1")) == (0, generation)
            assert value(samples, "wfctl_shard_lease_generation", shard="0") == rows[0]["generation"]
            beat = value(samples, "wfctl_shard_heartbeat_age_seconds", shard="1")
            assert 0 <= beat <= scraped - rows[1]["heartbeat_at"] + 1
            assert value(samples, "wfctl_shard_up", shard="0") == value(samples, "wfctl_shard_up", shard="1") == 1
            assert rows[0]["runs_by_status"].get("completed", 0) == hello_0 + sum(r.shard == 0 for r in runs["retries"])
            assert held.release_lease(ELSEWHERE, generation)  # the worker takes shard 1 and ends its runs

            def ended():
                s = worker.scrape()
                done = sum(value(s, f"wfctl_runs_{end}_total", definition=d) or 0
                           for end in ("completed", "failed") for d in runs)
                return done == sum(map(len, runs.values())) and s

            samples = wait_until(ended, timeout=DEADLINE_S, interval=0.2)
            assert samples, worker.lines
            assert wait_until(lambda: _contention_matches(worker.scrape(), _shards(data)), timeout=DEADLINE_S)
            rows = _shards(data)
            with Engine(data, create=False) as engine:
                for definition, started_runs in runs.items():
                    assert value(samples, "wfctl_runs_started_total", definition=definition) == len(started_runs)
                    assert (value(samples, "wfctl_runs_completed_total", definition=definition) or 0) == \
                        engine.count(["completed"], definition)
                    assert (value(samples, "wfctl_runs_failed_total", definition=definition) or 0) == \
                        engine.count(["failed"], definition)
                assert engine.count(["failed"], "doomed") == 1 and engine.count(["completed"]) == 10
                steps = [row for rs in runs.values() for r in rs
                         for row in engine.status(r.execution_id, steps=None)["steps"]]
            by_type: dict[str, int] = {}
            for row in steps:  # one per attempt
                by_type[row["type"]] = by_type.get(row["type"], 0) + 1
            for step_type, attempts in by_type.items():
                assert value(samples, "wfctl_step_duration_seconds_count", step_type=step_type) == attempts
            assert value(samples, "wfctl_step_retries_total", step_type="action") == 4  # the flaky step, twice a run
            assert sum(row["queue_depth"] for row in rows) == 0
            assert [value(samples, "wfctl_shard_queue_depth", shard=s) for s in "01"] == [0, 0]
            assert value(samples, "wfctl_shard_lease_held", shard="1") == 1
            assert value(samples, "wfctl_shard_lease_generation", shard="1") == rows[1]["generation"] > generation
            worker.stop()
    finally:
        held.close()


def _per_second(tmp_path):
    body = json.loads((EXAMPLES / "scheduled.json").read_text())
    body["id"] = "per-second"
    body["steps"][0]["config"].update(schedule="* * * * * *", overlap="allow_all")  # with or without a worker
    path = tmp_path / "per-second.json"
    path.write_text(json.dumps(body))
    return path


@pytest.mark.parametrize("command", ["scheduler", "worker"])
def test_schedule_fire_lag_is_the_runs_own(data, tmp_path, command):
    assert wfctl(data, "defs", "apply", str(_per_second(tmp_path))).returncode == 0
    with served(data, command, "--metrics-port", "0") as scheduler:
        def fired(at_least):
            return (value(scheduler.scrape(), "wfctl_schedule_fire_lag_seconds_count", definition="per-second")
                    or 0) >= at_least

        assert wait_until(lambda: fired(3), timeout=DEADLINE_S, interval=0.2), scheduler.lines
        assert wfctl(data, "schedules", "pause", "per-second").returncode == 0
        with Engine(data, create=False) as engine:
            def settled():  # no new slot fires once paused: the count and the runs agree
                s = scheduler.scrape()
                runs = engine.list(definition="per-second", limit=1000)
                return value(s, "wfctl_schedule_fire_lag_seconds_count", definition="per-second") == len(runs) \
                    and (s, runs)

            samples, runs = wait_until(settled, timeout=DEADLINE_S, interval=0.2)
        lags = [run["fire_lag_ms"] / 1000.0 for run in runs]
        total = value(samples, "wfctl_schedule_fire_lag_seconds_sum", definition="per-second")
        # the scheduler times a fire once its start returned, the run's own lag is from its creation
        assert sum(lags) - 0.01 <= total <= sum(lags) + 2.0 * len(lags)
        assert value(samples, "wfctl_schedule_fire_lag_seconds_bucket", definition="per-second", le="+Inf") == len(runs)
        assert value(samples, "wfctl_schedule_fire_lag_seconds_bucket", definition="per-second", le="3600.0") == \
            sum(lag <= 3600 for lag in lags)
        scheduler.stop()


@pytest.mark.parametrize("command", ["worker", "scheduler"])
def test_a_port_in_use_is_one_line_and_nothing_starts(tmp_path, command):
    data = tmp_path / "data"
    assert wfctl(data, "init", "--shards", "1").returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = refused(wfctl(data, command, "--metrics-port", str(port), timeout=120))
    assert f"--metrics-port: cannot serve metrics on '127.0.0.1' port {port}: Address already in use" in line
    assert _shards(data)[0]["lease_owner"] is None  # no worker ran


def test_a_host_that_is_not_this_machines_is_one_line(tmp_path):
    data = tmp_path / "data"
    assert wfctl(data, "init", "--shards", "1").returncode == 0
    line = refused(wfctl(data, "worker", "--metrics-port", "0", "--metrics-host", "host.invalid", timeout=120))
    assert line.startswith("wfctl: error: --metrics-host: cannot serve metrics on 'host.invalid' port 0: ")


def test_the_shard_metrics_follow_shards_added_and_removed_while_the_worker_runs(data):
    """A worker serving every shard reads the shard count at each scrape: shards that `wfctl shards add`
    creates appear (and are served), shards `wfctl shards remove` drops disappear."""
    with served(data, "worker", "--no-scheduler", "--metrics-port", "0") as worker:
        assert wait_until(lambda: value(worker.scrape(), "wfctl_shard_up", shard="1") == 1, timeout=DEADLINE_S)
        assert value(worker.scrape(), "wfctl_shard_up", shard="2") is None
        added = wfctl(data, "shards", "add", "1")
        assert added.returncode == 0, added.stderr
        assert wait_until(lambda: value(worker.scrape(), "wfctl_shard_lease_held", shard="2") == 1, timeout=DEADLINE_S)
        removed = wfctl(data, "shards", "remove", "1")
        assert removed.returncode == 0, removed.stderr
        assert wait_until(lambda: value(worker.scrape(), "wfctl_shard_up", shard="2") is None, timeout=DEADLINE_S)
        assert value(worker.scrape(), "wfctl_shard_up", shard="1") == 1


def test_the_directory_a_worker_killed_with_kill_9_left_is_removed_by_the_next_one(tmp_path, monkeypatch):
    data = tmp_path / "data"
    assert wfctl(data, "init", "--shards", "1").returncode == 0
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))  # the served processes' temporary directory
    killed = Served(data, "worker", "--metrics-port", "0")
    [left] = temp.glob(f"wfctl-metrics-{killed.proc.pid}-*")
    killed.proc.kill()  # kill -9: no cleanup
    killed.proc.wait(60)
    assert left.is_dir()
    with served(data, "worker", "--metrics-port", "0") as again:
        assert not left.exists()
        assert [p.name.split("-")[2] for p in temp.glob("wfctl-metrics-*")] == [str(again.proc.pid)]
        assert value(again.scrape(), "wfctl_shard_up", shard="0") == 1


def test_lease_ages_are_read_on_the_servers_clock_whatever_this_machines_says(tmp_path, monkeypatch):
    """On PostgreSQL lease times are the server's clock: a scraping machine whose clock is an hour
    ahead still sees its own live lease and a fresh heartbeat."""
    import wfctl.engine.metrics as metrics
    from wfctl.engine.ids import default_owner

    with pg_project(tmp_path / "data", shards=1, tag="metrics") as project:
        datadir = DataDir.open(project, create=False)
        with datadir.open_shard(0) as store:
            assert store.acquire_lease(default_owner(), 60, now=time.time()) is not None
            collector = metrics.ShardCollector(datadir, None)
            real = time.time
            monkeypatch.setattr(metrics.time, "time", lambda: real() + 3600)
            try:
                samples = {(s.name, s.labels["shard"]): s.value for family in collector.collect() for s in family.samples}
            finally:
                monkeypatch.undo()
                collector.close()
        assert samples[("wfctl_shard_lease_held", "0")] == 1
        assert 0 <= samples[("wfctl_shard_heartbeat_age_seconds", "0")] < 60
