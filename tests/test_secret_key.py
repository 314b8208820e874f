"""The data directory's secret key: never re-made over encrypted state, checked by fingerprint,
and a run whose secrets cannot be decrypted waits for the right key instead of failing.

Issue 9: a missing or different key made the worker create a new ``secret.key`` silently and
every in-flight run holding a secret failed for good; a garbage key file was a traceback.
Real ``wfctl`` processes on real data directories.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from helpers import refused, wfctl_env
from helpers import wfctl as run_wfctl
from wfctl.engine.keys import fingerprint
from wfctl.secrets import SecretBox

TOKEN = "hunter2-token-value"
DEFINITION = {
    "id": "vault", "name": "vault", "config": {"secrets": {"TOKEN": {"envVar": "VAULT_TOKEN"}}},
    "steps": [
        {"stepSlug": "start", "name": "Start", "stepType": "start", "config": {}, "nextSteps": {"success": "check"}},
        {"stepSlug": "check", "name": "Check", "stepType": "condition",
         "config": {"expression": f"secrets.TOKEN == '{TOKEN}'"},
         "nextSteps": {"true": "good", "false": "bad"}},
        {"stepSlug": "good", "name": "Good", "stepType": "output", "config": {"mapping": {"secret_ok": True}},
         "nextSteps": {}},
        {"stepSlug": "bad", "name": "Bad", "stepType": "output", "config": {"mapping": {"secret_ok": False}},
         "nextSteps": {}}]}


def wfctl(data, *args, key: str | None = None, timeout=180) -> subprocess.CompletedProcess:
    """wfctl in a subprocess with VAULT_TOKEN set, and ``key`` as $WFCTL_SECRET_KEY (else none)."""
    env = wfctl_env(drop=("WFCTL_SECRET_KEY",), VAULT_TOKEN=TOKEN, **({"WFCTL_SECRET_KEY": key} if key else {}))
    return run_wfctl(data, *args, env=env, timeout=timeout)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, (proc.args, proc.returncode, proc.stdout, proc.stderr)
    return proc


def status(data, execution_id, key=None) -> dict:
    return json.loads(ok(wfctl(data, "status", execution_id, "--json", key=key)).stdout)


@pytest.fixture
def vault(tmp_path) -> Path:
    path = tmp_path / "vault.json"
    path.write_text(json.dumps(DEFINITION))
    return path


def started(tmp_path, vault, key=None) -> tuple[Path, str]:
    """A data directory (made by init) with one pending run holding an encrypted secret."""
    data = tmp_path / "data"
    ok(wfctl(data, "init", "--shards", "2", key=key))
    eid = ok(wfctl(data, "start", vault, key=key)).stdout.strip()
    assert status(data, eid)["status"] == "pending"
    return data, eid


def test_init_makes_the_key_and_records_its_fingerprint(tmp_path):
    data = tmp_path / "data"
    ok(wfctl(data, "init"))
    key = (data / "secret.key").read_text().strip()
    assert (data / "secret.key").stat().st_mode & 0o777 == 0o600
    assert json.loads((data / "wfctl.json").read_text())["secret_key_fingerprint"] == fingerprint(key)
    SecretBox(key)  # a valid key


def test_a_missing_key_is_refused_and_the_run_resumes_once_it_is_back(tmp_path, vault):
    data, eid = started(tmp_path, vault)
    key_file = data / "secret.key"
    saved = key_file.read_bytes()
    key_file.unlink()
    for args in (["worker", "--drain"], ["start", vault], ["init"]):
        line = refused(wfctl(data, *args))
        assert "secret key of data directory" in line and "is missing" in line and "secret.key" in line, line
    assert not key_file.exists()  # no new key made
    assert status(data, eid)["status"] == "pending"
    key_file.write_bytes(saved)
    ok(wfctl(data, "worker", "--drain"))
    run = status(data, eid)
    assert (run["status"], run["output"]) == ("completed", {"secret_ok": True})


def test_a_different_key_is_refused_and_the_run_resumes_with_the_right_one(tmp_path, vault):
    data, eid = started(tmp_path, vault)
    key_file = data / "secret.key"
    saved = key_file.read_bytes()
    other = SecretBox.generate_key()
    key_file.write_text(other + "\n")
    line = refused(wfctl(data, "worker", "--drain"))
    assert f"fingerprint {fingerprint(other)}" in line and "is not the key of data directory" in line
    key_file.write_bytes(saved)
    line = refused(wfctl(data, "worker", "--drain", key=other))  # the environment's key is checked too
    assert "$WFCTL_SECRET_KEY" in line and "is not the key" in line
    assert status(data, eid)["status"] == "pending"
    ok(wfctl(data, "worker", "--drain"))
    assert status(data, eid)["output"] == {"secret_ok": True}


@pytest.mark.parametrize("content", [b"not a key\n", b"\xff\xfe\x00garbage", b""])
def test_a_garbage_key_file_is_one_line(tmp_path, vault, content):
    data, eid = started(tmp_path, vault)
    (data / "secret.key").write_bytes(content)
    for args in (["worker", "--drain"], ["worker"], ["start", vault]):
        line = refused(wfctl(data, *args))
        assert "secret.key" in line, line
    assert status(data, eid)["status"] == "pending"


def test_the_environment_key_is_recorded_and_then_required(tmp_path, vault):
    key = SecretBox.generate_key()
    data, eid = started(tmp_path, vault, key=key)
    assert not (data / "secret.key").exists()
    assert json.loads((data / "wfctl.json").read_text())["secret_key_fingerprint"] == fingerprint(key)
    line = refused(wfctl(data, "worker", "--drain"))
    assert "is missing" in line
    assert not (data / "secret.key").exists()
    ok(wfctl(data, "worker", "--drain", key=key))
    assert status(data, eid)["output"] == {"secret_ok": True}


def test_a_run_whose_secrets_cannot_be_decrypted_waits_for_the_right_key(tmp_path, vault):
    """A directory from before fingerprints, used with $WFCTL_SECRET_KEY: the key cannot be
    checked up front, so the worker meets the wrong key at the run itself and leaves it waiting."""
    right, wrong = SecretBox.generate_key(), SecretBox.generate_key()
    data, eid = started(tmp_path, vault, key=right)
    settings = json.loads((data / "wfctl.json").read_text())
    del settings["secret_key_fingerprint"]  # as written by an older wfctl
    (data / "wfctl.json").write_text(json.dumps(settings))

    proc = wfctl(data, "worker", "--drain", key=wrong)
    assert proc.returncode == 1, proc.stderr
    assert eid in proc.stderr and "waits for the right secret key" in proc.stderr
    assert "fingerprint" not in (data / "wfctl.json").read_text()  # the unverified key was not recorded
    run = status(data, eid)
    assert run["status"] in ("pending", "running") and "waiting for the right secret key" in run["error"]
    assert "cannot decrypt a secret" in run["error"] and run["completed_at"] is None
    shards = json.loads(ok(wfctl(data, "shards", "--json")).stdout)
    held = [s for s in shards if s.get("waiting")]
    assert len(held) == 1 and "waiting for the right secret key" in held[0]["waiting_error"]
    assert "1 waiting: waiting for the right secret key" in ok(wfctl(data, "shards")).stdout

    ok(wfctl(data, "worker", "--drain", key=right))
    run = status(data, eid)
    assert (run["status"], run["output"], run["error"]) == ("completed", {"secret_ok": True}, None)
