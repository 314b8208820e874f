"""`wfctl stress run --keep` prints each kept data directory, ready for WFCTL_DATA_DIR; a folder
that holds data directories but is not one (the --keep folder, a variant's folder) is refused by
every command, naming the data directories inside, and nothing is created in it."""

from __future__ import annotations

import json
import os
import re

import pytest

from helpers import EXAMPLES, refused, wfctl, wfctl_env

COMMANDS = [["list"], ["shards"], ["start", EXAMPLES / "hello.json"], ["defs", "apply", EXAMPLES / "hello.json"],
            ["init"], ["worker", "--drain"]]


def tree(path):
    return sorted(os.path.relpath(os.path.join(d, f), path) for d, dirs, files in os.walk(path) for f in files + dirs)


@pytest.fixture(scope="module")
def kept(tmp_path_factory):
    """One `stress run concurrent-starts --smoke --keep` with its temporary folder in a test folder."""
    tmp = tmp_path_factory.mktemp("keep")
    proc = wfctl(None, "stress", "run", "concurrent-starts", "--smoke", "--keep", "--no-live", "--json", "r.json",
                 env=wfctl_env(TMPDIR=str(tmp)), cwd=tmp, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return tmp, proc, json.loads((tmp / "r.json").read_text())


def test_keep_prints_each_variant_data_directory_before_the_verdict(kept):
    tmp, proc, result = kept
    lines = proc.stdout.splitlines()
    paths = [m.group(1) for line in lines if (m := re.fullmatch(r"  concurrent-starts / main: (\S+)", line))]
    assert paths == [result["scenarios"][0]["variants"][0]["data_dir"]], proc.stdout
    assert paths[0].startswith(str(tmp)) and lines[-1].startswith("PASS"), proc.stdout
    env = wfctl_env(WFCTL_DATA_DIR=paths[0])
    runs = json.loads(wfctl(None, "list", "--json", "--limit", "100000", env=env).stdout)
    assert len(runs) == result["scenarios"][0]["settings"]["workload"]["total"]
    assert wfctl(None, "shards", "--no-check", env=env).returncode == 0


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(map(str, c[:2])))
def test_the_keep_folder_and_a_variant_folder_are_refused_and_left_alone(kept, command):
    tmp, _, result = kept
    data = result["scenarios"][0]["variants"][0]["data_dir"]
    keep_root = os.path.dirname(os.path.dirname(data))
    for folder in (keep_root, os.path.dirname(data)):
        before = tree(folder)
        line = refused(wfctl(None, *command, env=wfctl_env(WFCTL_DATA_DIR=folder)))
        assert line == (f"wfctl: error: {folder} is not a wfctl data directory but holds 1: {data}; "
                        "point --data-dir or $WFCTL_DATA_DIR at one of them")
        assert tree(folder) == before


def test_a_folder_of_data_directories_made_by_hand_is_refused_too(tmp_path):
    for name in ("a", "b"):
        assert wfctl(tmp_path / name / "data", "init").returncode == 0
    line = refused(wfctl(tmp_path, "start", EXAMPLES / "hello.json"))
    assert f"holds 2: {tmp_path / 'a' / 'data'}, {tmp_path / 'b' / 'data'};" in line
    assert not (tmp_path / "wfctl.json").exists() and not (tmp_path / ".wfctl.lock").exists()
    assert wfctl(tmp_path / "a" / "data", "start", EXAMPLES / "hello.json").returncode == 0
