"""The packaged stress scenarios: they load, validate, shrink under --smoke, take overrides,
and a bad scenario file fails with one line naming the file and the field."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from wfctl.definitions import load_definition
from wfctl.errors import InputError
from wfctl.stress.metrics import known_metric_names
from wfctl.stress.scenarios import (
    list_scenarios,
    load_scenario,
    scenario_names,
    scenarios_dir,
)
from wfctl.stress.thresholds import parse_threshold

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["concurrent-starts", "loop-contention", "payload-pressure", "scheduler-overlap",
         "shard-comparison", "sustained-load"]


def test_six_packaged_scenarios():
    assert scenario_names() == NAMES
    assert [s.name for s in list_scenarios()] == NAMES
    # the checkout's scenarios/ (editable install) or the installed copy of it (pip install .)
    packaged = scenarios_dir()
    assert sorted(p.name for p in packaged.glob("*.toml")) == sorted(p.name for p in (ROOT / "scenarios").glob("*.toml"))


@pytest.mark.parametrize("name", NAMES)
def test_scenario_loads_and_validates(name):
    s = load_scenario(name)
    assert s.name == name and s.source == scenarios_dir() / f"{name}.toml"
    assert s.description and s.shows and s.stuck_after > 0
    assert s.thresholds.defaults
    for text in s.thresholds.defaults:
        parse_threshold(text, known_metric_names())
    for path in s.definition_paths():
        load_definition(path)  # every referenced definition is valid
    assert s.smoke is not None, "every scenario has a --smoke preset"


def _smoke_seconds(s) -> float:
    """A rough upper bound on the smoke run's length (the harness's own overheads aside)."""
    w = s.workload
    if w.model == "open":
        return w.duration
    if w.model == "scheduled":
        return 10.0 * w.slots  # the packaged schedule is due every 10 s
    return 0.0


@pytest.mark.parametrize("name", NAMES)
def test_smoke_presets_are_small(name):
    full, smoke = load_scenario(name), load_scenario(name, smoke=True)
    # Sized by work; the deadline has room for a machine at half speed (the wait ends when the work is done).
    assert smoke.smoked and smoke.stuck_after >= 60
    assert _smoke_seconds(smoke) <= 15
    w = smoke.workload
    if w.model == "closed":
        assert w.total <= 1000 and w.total <= full.workload.total and w.clients <= 10
    if w.model == "open":
        assert w.rate * w.duration <= 60
    if smoke.input.generator == "sized":
        assert smoke.input.size_bytes <= 100_000
    if smoke.input.generator == "loops":
        assert smoke.input.iterations <= 10
    assert smoke.apply_smoke() is smoke  # applying twice changes nothing


def test_scenario_specifics():
    cs = load_scenario("concurrent-starts")
    assert (cs.workload.model, cs.workload.clients) == ("closed", 50) and cs.definition_count() >= 2
    sl = load_scenario("sustained-load")
    assert sl.workload.model == "open" and sl.workload.rate and len(sl.workload.stages) >= 2
    pp = load_scenario("payload-pressure")
    assert pp.input.generator == "sized" and 400_000 <= pp.input.size_bytes <= 600_000
    lc = load_scenario("loop-contention")
    assert lc.input.generator == "loops" and lc.input.iterations == 50
    for so in (load_scenario("scheduler-overlap"), load_scenario("scheduler-overlap", smoke=True)):
        assert so.definition_count() >= 6 and so.engine.schedulers >= 2
    sc = load_scenario("shard-comparison")
    assert sc.comparison.shards == [1, 4] and sc.comparison.routes == ["definition", "execution"]
    assert sc.comparison.hot_definition


def test_overrides_apply():
    s = load_scenario("concurrent-starts", {"clients": 7, "total": 21, "shards": 2, "route": "execution",
                                            "seed": 5, "stuck_after": "30s", "workers": None})
    assert (s.workload.clients, s.workload.total, s.engine.shards, s.engine.route) == (7, 21, 2, "execution")
    assert s.input.seed == 5 and s.stuck_after == 30 and s.engine.workers == 2
    # overrides win over --smoke
    s = load_scenario("concurrent-starts", {"total": 12}, smoke=True)
    assert (s.workload.clients, s.workload.total) == (10, 12)


def test_scale_multiplies_totals_and_rates():
    s = load_scenario("sustained-load", {"scale": 2})
    assert s.workload.rate == 5 and [st.target for st in s.workload.stages] == [5, 5]
    s = load_scenario("concurrent-starts", {"scale": 0.5})
    assert s.workload.total == 25 and s.workload.clients == 50
    s = load_scenario("concurrent-starts", {"scale": 3, "total": 4})
    assert s.workload.total == 4  # an explicit value wins over the scale


def test_duration_and_rate_overrides_on_open_model():
    s = load_scenario("sustained-load", {"duration": "5s", "rate": 1.5})
    assert s.workload.duration == 5 and s.workload.rate == 1.5 and s.workload.stages == []
    s = load_scenario("sustained-load", {"duration": "2m"})
    assert s.workload.duration == 120 and len(s.workload.stages) == 2
    s = load_scenario("sustained-load", {"rate": 4000, "duration": "260s"})  # the ramp keeps its shape
    assert [(st.duration, st.target) for st in s.workload.stages] == [(20, 4000), (40, 4000)]


def test_comparison_overrides():
    s = load_scenario("shard-comparison", {"shards": 8, "route": "execution"})
    assert s.comparison.shards == [1, 8] and s.comparison.routes == ["execution"]


@pytest.mark.parametrize("overrides, field", [
    ({"clients": 0}, "workload.clients"),
    ({"route": "random"}, "engine.route"),
    ({"shards": 0}, "engine.shards"),
    ({"duration": "soon"}, "--duration"),
    ({"scale": -1}, "--scale"),
    ({"bogus": 1}, "bogus"),
])
def test_bad_overrides_are_one_line(overrides, field):
    with pytest.raises(InputError) as info:
        load_scenario("sustained-load" if "duration" in overrides else "concurrent-starts", overrides)
    message = str(info.value)
    assert "\n" not in message and field in message


def test_user_copy_loads_by_path(tmp_path):
    copy = tmp_path / "mine.toml"
    shutil.copy(ROOT / "scenarios" / "loop-contention.toml", copy)
    text = copy.read_text().replace('name = "loop-contention"', 'name = "my-loops"').replace(
        "iterations = 50 ", "iterations = 7 ")
    copy.write_text(text)
    s = load_scenario(str(copy))
    assert s.name == "my-loops" and s.input.iterations == 7 and s.source == copy
    # the packaged relative definition path still resolves from a copy elsewhere
    assert s.definition_paths() == [scenarios_dir() / "definitions" / "loops.json"]
    assert load_scenario(copy).name == "my-loops"  # a Path works too
    # a definition next to the copy wins
    (tmp_path / "definitions").mkdir()
    shutil.copy(ROOT / "scenarios" / "definitions" / "loops.json", tmp_path / "definitions" / "loops.json")
    assert load_scenario(copy).definition_paths() == [tmp_path / "definitions" / "loops.json"]


def _bad(tmp_path, edit) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(edit((ROOT / "scenarios" / "concurrent-starts.toml").read_text()))
    with pytest.raises(InputError) as info:
        load_scenario(str(path))
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_unknown_key(tmp_path):
    message = _bad(tmp_path, lambda t: t.replace("[engine]\n", "[engine]\nshardz = 3\n"))
    assert re.search(r"engine\.shardz: unknown key", message)
    message = _bad(tmp_path, lambda t: "colour = 'red'\n" + t)
    assert "colour: unknown key" in message


def test_bad_duration(tmp_path):
    message = _bad(tmp_path, lambda t: t.replace('stuck_after = "5m"', 'stuck_after = "five minutes"'))
    assert "stuck_after:" in message and "five minutes" in message
    message = _bad(tmp_path, lambda t: t.replace('stuck_after = "2m"', 'stuck_after = "-3s"'))
    assert "smoke.stuck_after:" in message


def test_unknown_threshold_metric(tmp_path):
    message = _bad(tmp_path, lambda t: t.replace('"failed == 0"', '"faild == 0"'))
    assert "thresholds.defaults:" in message and "unknown metric 'faild'" in message and "failed" in message
    message = _bad(tmp_path, lambda t: t.replace('"failed == 0"', '"start_latency.p99 < 5%"'))
    assert "thresholds.defaults:" in message


def test_other_bad_files(tmp_path):
    assert "workload.model" in _bad(tmp_path, lambda t: t.replace('model = "closed"', 'model = "tidal"'))
    assert "workload: model 'closed' needs 'total'" in _bad(tmp_path, lambda t: t.replace("total = 50\n", "", 1))
    assert "not valid TOML" in _bad(tmp_path, lambda t: t + "\n[engine\n")
    assert "definitions.0.path: no definition file" in _bad(
        tmp_path, lambda t: t.replace("definitions/greet.json", "definitions/nope.json"))
    assert "exactly one of" in _bad(
        tmp_path, lambda t: t.replace('copies = 4', 'copies = 4\nbuiltin = "greet"'))
    assert "scenario: missing" in _bad(tmp_path, lambda t: t.split("[scenario]")[0] + "[engine]" + t.split("[engine]")[1])


def test_unknown_name_and_missing_path():
    with pytest.raises(InputError, match="unknown scenario 'nope' \\(known: concurrent-starts"):
        load_scenario("nope")
    with pytest.raises(InputError, match="no such scenario file"):
        load_scenario("/nonexistent/x.toml")


def test_builtin_and_inline_definitions(tmp_path):
    text = (ROOT / "scenarios" / "concurrent-starts.toml").read_text()
    text = text.replace('path = "definitions/greet.json"  # relative to this file', 'builtin = "greet"')
    text += '\n[[definitions]]\ninline = { id = "tiny", steps = [] }\n'
    path = tmp_path / "s.toml"
    path.write_text(text)
    s = load_scenario(path)
    assert s.definition_count() == 5
    assert s.definition_paths() == [scenarios_dir() / "definitions" / "greet.json"]


def test_packaged_files_parse_as_plain_toml():
    for name in NAMES:
        data = tomllib.loads((ROOT / "scenarios" / f"{name}.toml").read_text())
        assert data["scenario"]["name"] == name


def test_pyproject_lists_every_wfctl_package():
    """packages are listed (not found) so scenarios/ can ship as wfctl_scenarios: keep the list complete."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "wfctl").rglob("__init__.py")}
    assert on_disk <= listed
    assert "wfctl_scenarios" in listed


def test_cli_stress_list_json():
    proc = subprocess.run([sys.executable, "-m", "wfctl", "stress", "list", "--json"], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    items = json.loads(proc.stdout)
    assert [i["name"] for i in items] == NAMES
    for item in items:
        assert item["description"] and item["shows"] and item["model"] in ("closed", "open", "scheduled")
        assert isinstance(item["shards"], int)
    proc = subprocess.run([sys.executable, "-m", "wfctl", "stress", "list"], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, cwd=ROOT, timeout=60)
    assert proc.returncode == 0 and "shard-comparison" in proc.stdout
