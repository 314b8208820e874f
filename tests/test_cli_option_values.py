"""Odd option values are input errors: one line on stderr, exit 2, nothing started or deleted
(they were exit 70, "internal error", before)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import EXAMPLES, ROOT

HELLO = str(EXAMPLES / "hello.json")


def wfctl(data, *args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("WFCTL_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "wfctl", "--data-dir", os.fsencode(data), *args],
                          capture_output=True, env=env, timeout=120, **kwargs)


def input_error(result, *words):
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("wfctl: error: ") and "internal error" not in err and "Traceback" not in err
    for word in words:
        assert word in err, err


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    data = tmp_path_factory.mktemp("values") / "data"
    assert wfctl(data, "init", "--shards", "2").returncode == 0
    assert wfctl(data, "defs", "apply", HELLO).returncode == 0
    done = wfctl(data, "start", "hello", "--input", '{"name": "x"}', "--wait", "--timeout", "60")
    assert done.returncode == 0, done.stderr
    return data


def runs(data) -> list[dict]:
    return json.loads(wfctl(data, "list", "--json", "-n", "1000").stdout)


def deep(n: int) -> str:
    return '{"a":' * n + "1" + "}" * n


def test_deeply_nested_input(data, tmp_path):
    before = len(runs(data))
    for text in (deep(1000), deep(101)):
        input_error(wfctl(data, "start", "hello", "--input", text), "--input", "nested deeper than 100")
        input_error(wfctl(data, "run", HELLO, "--input", text), "--input", "nested deeper")
        input_error(wfctl(data, "eval", "a", "--vars", text), "--vars", "nested deeper")
    path = tmp_path / "deep.json"
    path.write_text(deep(5000))
    input_error(wfctl(data, "start", "hello", "--input-file", str(path)), "nested deeper")
    input_error(wfctl(data, "start", "hello", "--input", f"@{path}"), "nested deeper")
    assert len(runs(data)) == before
    assert wfctl(data, "start", "hello", "--input", '{"name": ' + deep(98) + "}").returncode == 0


def test_list_limit_out_of_range(data):
    for value in ("100000000000000000000", "1e20", "0", "-1"):
        input_error(wfctl(data, "list", "--limit", value), "limit")
    assert wfctl(data, "list", "--limit", "1000000000").returncode == 0


def test_start_wait_timeout_must_be_finite_and_not_negative(data):
    before = len(runs(data))
    for value, words in (("-1", ("--timeout", "negative")), ("nan", ("--timeout", "finite")),
                         ("inf", ("--timeout", "finite"))):
        input_error(wfctl(data, "start", "hello", "--wait", "--timeout", value), *words)
    assert len(runs(data)) == before  # checked before the run is started


def test_cleanup_older_than_nan(data):
    before = len(runs(data))
    for value in ("nan", "inf", "1e400", "-1"):
        input_error(wfctl(data, "cleanup", "--older-than", value, "--yes"), "--older-than")
    assert len(runs(data)) == before


def test_stress_run_non_finite_overrides(data):
    input_error(wfctl(data, "stress", "run", "concurrent-starts", "--smoke", "--no-live", "--scale", "nan"),
                "--scale", "finite")
    input_error(wfctl(data, "stress", "run", "concurrent-starts", "--smoke", "--no-live", "--scale", "inf"),
                "--scale")
    input_error(wfctl(data, "stress", "run", "sustained-load", "--smoke", "--no-live", "--rate", "inf"),
                "rate", "finite")
    input_error(wfctl(data, "stress", "run", "concurrent-starts", "--no-live", "--scale", "1e308"),
                "--scale", "too large")


def test_unusable_arguments_are_one_line(data):
    input_error(wfctl(data, "status", b"\xff\xfe"), "argument 4", "not valid UTF-8")
    input_error(wfctl(data, "status", "a\nb"), "unknown execution id 'a\\nb'")
    input_error(wfctl(data, "status", " "), "unknown execution id")  # no warning line about its prefix
    input_error(wfctl(data, "defs", "apply", "x" * 5000 + ".json"))
    input_error(wfctl(data, "start", "x" * 5000 + ".json"), "unknown definition")
    input_error(wfctl(data, "stress", "run", "x" * 5000), "unknown scenario")
    input_error(wfctl(data, "stress", "run", "x" * 5000 + ".toml"), "no such scenario file")


def test_stored_lone_surrogate_prints(data):
    """A JSON escape for a lone surrogate is valid input; printing it was exit 70 (UnicodeEncodeError)."""
    started = wfctl(data, "start", "hello", "--input", '{"name": "\\ud800"}')
    assert started.returncode == 0, started.stderr
    eid = started.stdout.decode().strip()
    status = wfctl(data, "status", eid, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["input"] == {"name": "\ud800"}
    assert eid in [r["execution_id"] for r in runs(data)]
    assert wfctl(data, "status", eid).returncode == 0
    ran = wfctl(data, "run", HELLO, "--input", '{"name": "\\ud800"}', "--json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["output"]["message"] == "Hello, \ud800!"
