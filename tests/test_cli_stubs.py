"""tale's examples run durably with a stubs file: `start --wait --stubs` and `worker --stubs`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import EXAMPLES, TALE_EXAMPLES

pytestmark = pytest.mark.skipif(not TALE_EXAMPLES.is_dir(), reason="../shared/tale-examples is not present")


def wfctl(data, *args):
    return subprocess.run([sys.executable, "-m", "wfctl", "--data-dir", str(data), *args],
                          capture_output=True, text=True, timeout=120)


def test_start_wait_and_worker_with_stubs(tmp_path):
    data = tmp_path / "data"
    done = wfctl(data, "start", str(TALE_EXAMPLES / "gmail" / "email-sync.json"), "--wait", "--json",
                 "--stubs", str(EXAMPLES / "stubs" / "gmail-email-sync.yaml"))
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["status"] == "completed"
    assert status["steps"][-1]["slug"] == "insert_email_to_conversation"

    circuly = str(TALE_EXAMPLES / "circuly" / "sync-customers.json")
    ids = [wfctl(data, "start", circuly).stdout.strip() for _ in range(3)]
    drained = wfctl(data, "worker", "--drain", "--processes", "2",
                    "--stubs", str(EXAMPLES / "stubs" / "circuly-sync-customers.yaml"))
    assert drained.returncode == 0, drained.stderr
    for eid in ids:
        run = json.loads(wfctl(data, "status", eid, "--json").stdout)
        assert run["status"] == "completed"
        assert [s["slug"] for s in run["steps"]].count("insert_new_customer") == 3  # two pages: 2 + 1


def test_bad_stubs_file_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rag: [unclosed\n")
    for args in (["worker", "--drain", "--stubs", str(bad)],
                 ["start", str(EXAMPLES / "hello.json"), "--wait", "--stubs", str(bad)],
                 ["start", str(EXAMPLES / "hello.json"), "--stubs", str(EXAMPLES / "stubs" / "gmail-email-sync.yaml")]):
        proc = wfctl(tmp_path / "data", *args)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr
