"""Definition input hygiene, as a user meets it: the id rule, duplicate keys, YAML aliases,
and ``--definition`` filters naming nothing. The real ``wfctl`` runs in subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import EXAMPLES, TALE_EXAMPLES
from test_cli_engine import error_line, init, ok, ok_json, start_runs, wfctl
from wfctl.definitions import find_definition_files, validate_file

HELLO = EXAMPLES / "hello.json"
STEPS = [{"stepSlug": "start", "name": "Start", "stepType": "start", "nextSteps": {"success": "done"}},
         {"stepSlug": "done", "name": "Done", "stepType": "output", "config": {"mapping": {"ok": True}}}]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def definition_json(definition_id=None, **extra) -> str:
    body = {"name": "Flow", "steps": STEPS, **extra}
    if definition_id is not None:
        body["id"] = definition_id
    return json.dumps(body)


def assert_nothing_stored(data: Path) -> None:
    assert ok_json(wfctl("defs", "list", "--json", data=data)) == []


# -- the id rule --------------------------------------------------------------------------------

BAD_IDS = {"nul": "a\x00b", "newline": "a\nb", "dotdot": "a..b", "only-dots": "..", "long": "x" * 100_000,
           "space": "my flow", "leading-dash": "-flow", "slash": "a/b", "empty": "", "non-ascii": "flüss",
           "129-chars": "a" * 129}


def test_invalid_ids_are_refused_with_one_line(tmp_path):
    files = {name: write(tmp_path / "defs" / f"{name}.json", definition_json(value)) for name, value in BAD_IDS.items()}
    good = write(tmp_path / "defs" / "good.json", definition_json("Good_flow-2.v1"))
    report = wfctl("defs", "validate", tmp_path / "defs", "--json")
    results = {Path(r["file"]).stem: r for r in ok_json(report, 1)}
    assert results["good"]["valid"] and results["good"]["definition_id"] == "Good_flow-2.v1"
    for name in BAD_IDS:
        [issue] = results[name]["errors"]
        assert issue["field"] == "id" and "invalid definition id" in issue["message"], (name, issue)
        assert "\n" not in issue["text"] and "\x00" not in issue["text"] and len(issue["text"]) < 300, name
        assert results[name]["definition_id"] is None
    assert "(100000 characters)" in results["long"]["errors"][0]["message"]

    data = init(tmp_path)
    for name in ("nul", "newline", "long", "dotdot"):
        for command in (["defs", "apply"], ["start"]):
            line = error_line(wfctl(*command, files[name], data=data))
            assert "invalid definition id" in line and len(line) < 300, (command, name, line)
    assert_nothing_stored(data)
    assert ok(wfctl("defs", "apply", good, data=data)).stdout.startswith("Good_flow-2.v1: applied")


def test_an_id_taken_from_the_file_name_follows_the_rule(tmp_path):
    data = init(tmp_path)
    spaced = write(tmp_path / "my flow.json", definition_json())
    line = error_line(wfctl("start", spaced, data=data))
    assert line.startswith("my flow.json: id: invalid definition id 'my flow'") and "taken from the file name" in line
    assert_nothing_stored(data)
    named = write(tmp_path / "renamed flow.json", definition_json("renamed-flow"))
    assert ok_json(wfctl("start", named, "--json", data=data))["created"]


def test_shipped_and_tale_ids_follow_the_rule():
    from wfctl.definitions.model import ID_PATTERN

    paths = find_definition_files([EXAMPLES, EXAMPLES.parent / "scenarios" / "definitions"])
    if TALE_EXAMPLES.is_dir():
        paths += find_definition_files([TALE_EXAMPLES])
    assert len(paths) >= 8
    for path in paths:
        report = validate_file(path)
        assert not [i for i in report.errors if i.field == "id"], path
        assert ID_PATTERN.fullmatch(report.definition_id) and ".." not in report.definition_id, path


# -- duplicate keys -----------------------------------------------------------------------------

def test_duplicate_json_keys_name_the_key_and_where(tmp_path):
    steps = json.dumps(STEPS)
    dup_step = write(tmp_path / "defs" / "dup-step.json", (
        '{"name": "Flow", "steps": [' + json.dumps(STEPS[0]) + ', {"stepSlug": "done", "stepSlug": "end", '
        '"name": "Done", "stepType": "output"}]}'))
    dup_top = write(tmp_path / "defs" / "dup-top.json", '{"name": "A", "steps": ' + steps + ', "name": "B"}')
    results = {Path(r["file"]).name: r for r in ok_json(wfctl("defs", "validate", tmp_path / "defs", "--json"), 1)}
    assert results["dup-step.json"]["errors"][0]["message"] == "invalid JSON: duplicate key 'stepSlug' in 'steps[1]'"
    assert results["dup-top.json"]["errors"][0]["message"] == "invalid JSON: duplicate key 'name' in the top level"

    data = init(tmp_path)
    assert error_line(wfctl("start", dup_step, data=data)) == "dup-step.json: invalid JSON: duplicate key 'stepSlug' in 'steps[1]'"
    assert "duplicate key 'name'" in error_line(wfctl("defs", "apply", dup_top, data=data))
    assert_nothing_stored(data)


def test_duplicate_yaml_keys_name_the_key_and_line(tmp_path):
    flow = write(tmp_path / "flow.yaml", "name: Flow\nsteps:\n- stepSlug: done\n  name: Done\n  stepType: output\n"
                                         "  config:\n    mapping:\n      ok: true\n      ok: false\n")
    line = error_line(wfctl("start", flow, data=init(tmp_path)))
    assert line == "flow.yaml: invalid YAML: duplicate key 'ok' at line 9 column 7"
    [report] = ok_json(wfctl("defs", "validate", flow, "--json"), 1)
    assert report["errors"][0]["message"] == "invalid YAML: duplicate key 'ok' at line 9 column 7"


def test_duplicate_keys_in_a_stubs_file(tmp_path):
    stubs = write(tmp_path / "stubs.yaml", "customer:\n  create: {id: 1}\n  create: {id: 2}\n")
    line = error_line(wfctl("run", HELLO, "--stubs", stubs))
    assert "duplicate key 'create' at line 3 column 3" in line and "stubs.yaml" in line
    stubs_json = write(tmp_path / "stubs.json", '{"customer": {"create": 1}, "customer": {}}')
    assert "duplicate key 'customer'" in error_line(wfctl("run", HELLO, "--stubs", stubs_json))


# -- YAML aliases ---------------------------------------------------------------------------------

def alias_bomb() -> str:
    """A billion-laughs definition: 9^8 strings once its aliases are expanded."""
    lines = ["name: bomb", "steps:", "- stepSlug: out", "  name: out", "  stepType: output", "  config:",
             "    mapping:", '      a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefg", "bcdefgh"):
        lines.append(f"      {name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


SELF_ALIAS = "name: self\nsteps:\n- stepSlug: out\n  name: out\n  stepType: output\n  config:\n    mapping:\n      a: &a [*a]\n"


def test_yaml_alias_bomb_and_self_reference_are_one_line(tmp_path):
    folder = tmp_path / "defs"
    bomb = write(folder / "bomb.yaml", alias_bomb())
    loop = write(folder / "self.yml", SELF_ALIAS)
    write(folder / "good.json", definition_json("good"))
    assert len(bomb.read_bytes()) < 500
    results = {Path(r["file"]).name: r for r in ok_json(wfctl("defs", "validate", folder, "--json", timeout=60), 1)}
    assert results["good.json"]["valid"]
    assert results["bomb.yaml"]["errors"][0]["message"] == (
        "invalid YAML: YAML aliases are not allowed (found *a at line 9 column 14)")
    assert results["self.yml"]["errors"][0]["message"] == (
        "invalid YAML: YAML aliases are not allowed (found *a at line 8 column 14)")
    table = ok(wfctl("defs", "validate", folder, timeout=60), 1).stdout
    assert "3 file(s), 2 invalid" in table

    data = init(tmp_path)
    for path in (bomb, loop):
        for command in (["start"], ["defs", "apply"], ["run"]):
            assert "YAML aliases are not allowed" in error_line(wfctl(*command, path, data=data, timeout=60))
    assert_nothing_stored(data)


def test_yaml_aliases_in_a_stubs_file(tmp_path):
    stubs = write(tmp_path / "stubs.yaml", "customer:\n  create: &r [*r]\n")
    line = error_line(wfctl("run", HELLO, "--stubs", stubs, timeout=60))
    assert "stubs.yaml" in line and "YAML aliases are not allowed (found *r at line 2 column 15)" in line


# -- --definition filters -------------------------------------------------------------------------

def test_definition_filters_naming_nothing_are_refused(tmp_path):
    data = init(tmp_path)
    start_runs(data, str(HELLO), 2)
    assert error_line(wfctl("cancel", "--definition", "nosuch", "--yes", data=data)) == "unknown definition 'nosuch'"
    assert error_line(wfctl("list", "--definition", "nosuch", data=data)) == "unknown definition 'nosuch'"
    assert error_line(wfctl("list", "--definition", "no\nsuch", "--json", data=data)) == "unknown definition 'no\\nsuch'"
    assert [r["status"] for r in ok_json(wfctl("list", "--json", data=data))] == ["pending", "pending"]
    assert ok_json(wfctl("cancel", "--definition", "hello", "--yes", "--json", data=data)) == {"count": 2}
    assert ok_json(wfctl("cancel", "--definition", "hello", "--yes", "--json", data=data)) == {"count": 0}
    assert len(ok_json(wfctl("list", "--definition", "hello", "--json", data=data))) == 2
