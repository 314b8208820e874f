"""Side-effecting actions for the engine and worker tests, referenced as ``test_worker_effects:NAME``.

No tests here. ``record`` appends ``<execution id> <item> <attempt>`` to the file named by
``$WFCTL_TEST_EFFECTS`` (one ``write`` per line, so lines from many processes never interleave).
"""

from __future__ import annotations

import os
import threading
import time

from helpers import wait_until
from wfctl.errors import ActionError

#: ``gated`` waits for this on attempt 1 (tests in the same process open it).
GATE = threading.Event()
#: Set by ``gated`` once it is waiting.
ENTERED = threading.Event()


def record(params: dict, ctx) -> dict:
    """Sleep ``params.sleep`` seconds, then append one line for this call."""
    time.sleep(float(params.get("sleep", 0)))
    line = f"{ctx.execution_id} {params.get('item')} {ctx.attempt}\n".encode()
    fd = os.open(os.environ["WFCTL_TEST_EFFECTS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return {"attempt": ctx.attempt}


def gated(params: dict, ctx) -> dict:
    """On attempt 1, block until GATE is set; return the attempt."""
    if ctx.attempt == 1:
        ENTERED.set()
        GATE.wait(30)
    return {"attempt": ctx.attempt}


def flaky(params: dict, ctx) -> dict:
    """Fail the first ``params.failures`` attempts."""
    if ctx.attempt <= int(params.get("failures", 1)):
        raise ActionError(f"flaky failure on attempt {ctx.attempt}")
    return {"attempt": ctx.attempt}


def tracked(params: dict, ctx) -> dict:
    """Append ``begin <pid> <execution id> <item> <attempt>``; when ``params.item`` equals
    ``$WFCTL_TEST_HOLD_ITEM``, wait until the file ``$WFCTL_TEST_HOLD_UNTIL`` exists (for ever
    when unset); sleep ``params.sleep`` seconds; append ``end ...`` likewise; return the attempt
    and this process's pid (so the journal shows which worker ran it)."""
    tail = f"{os.getpid()} {ctx.execution_id} {params.get('item')} {ctx.attempt}\n"
    _append(f"begin {tail}")
    if str(params.get("item")) == os.environ.get("WFCTL_TEST_HOLD_ITEM"):
        gate = os.environ.get("WFCTL_TEST_HOLD_UNTIL")
        # Fails the step rather than hang when the test never opens the gate.
        if not wait_until(lambda: gate and os.path.exists(gate), timeout=300, interval=0.05):
            raise RuntimeError(f"the test never opened the gate {gate}")
    time.sleep(float(params.get("sleep", 0)))
    _append(f"end {tail}")
    return {"attempt": ctx.attempt, "pid": os.getpid()}


def _append(line: str) -> None:
    fd = os.open(os.environ["WFCTL_TEST_EFFECTS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
