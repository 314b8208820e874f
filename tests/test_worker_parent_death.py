"""``kill -9`` of the ``wfctl worker`` parent: its worker processes stop with it (cleanly,
releasing their leases) instead of holding every shard and heartbeating forever."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from helpers import EXAMPLES, wait_until, wfctl, wfctl_argv, wfctl_env

HELLO = str(EXAMPLES / "hello.json")


def _shards(data) -> list[dict]:
    proc = wfctl(data, "shards", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie waiting to be reaped does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return "\nState:\tZ" not in status


def test_kill_9_of_the_worker_parent_stops_its_children_and_frees_the_leases(tmp_path):
    data = tmp_path / "data"
    assert wfctl(data, "init", "--shards", "2").returncode == 0
    parent = subprocess.Popen(wfctl_argv(data, "worker", "--processes", "2", "--no-scheduler"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              env=wfctl_env(), start_new_session=True)
    children: set[int] = set()
    try:
        assert wait_until(lambda: all(s["lease_owner"] for s in _shards(data))), "the worker took no lease"
        owners = {s["lease_owner"] for s in _shards(data)}
        children = {int(owner.split(":")[1]) for owner in owners}  # host:pid:random, one per child
        assert len(children) == 2 and parent.pid not in children
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=60)

        assert wait_until(lambda: not any(_alive(pid) for pid in children)), \
            f"worker processes {sorted(p for p in children if _alive(p))} outlived their parent"
        shards = _shards(data)
        assert [s["lease_owner"] for s in shards] == [None, None], shards  # released, not left to expire
        proc = wfctl(data, "start", HELLO, "--input", '{"name": "Ada"}')
        assert proc.returncode == 0, proc.stderr
        eid = proc.stdout.strip()
        assert wfctl(data, "worker", "--drain").returncode == 0  # another worker takes the shards
        assert json.loads(wfctl(data, "status", eid, "--json").stdout)["status"] == "completed"
    finally:
        for pid in children:  # never leave a stray worker behind a failed test
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
            parent.wait()
