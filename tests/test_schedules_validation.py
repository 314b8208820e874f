"""`defs validate`/`apply` check scheduled triggers: one-line errors naming the field."""

from __future__ import annotations

import json

import pytest

from wfctl.definitions import load_definition, validate_data
from wfctl.errors import DefinitionError

LOCAL = {"set_variables", "log", "sleep", "fail", "http_request"}


def trigger(**config):
    return {"stepSlug": "cron", "name": "cron", "stepType": "trigger", "config": {"type": "scheduled", **config},
            "nextSteps": {"success": "done"}}


DONE = {"stepSlug": "done", "name": "done", "stepType": "output", "config": {"mapping": {"at": "{{input.at}}"}}}


def validate(*steps):
    return validate_data({"name": "t", "steps": [*steps, DONE]}, "flows/nightly.json", "nightly",
                         known_actions=LOCAL, platform_actions=set())


def errors(*steps):
    return [str(i) for i in validate(*steps).errors]


def warnings(*steps):
    report = validate(*steps)
    assert report.errors == []
    return [str(i) for i in report.warnings]


def test_a_valid_schedule_has_no_issues():
    report = validate(trigger(schedule="30 2 * * *", timezone="Europe/Berlin", overlap="buffer_one",
                              catchupWindow="2h", jitter=30_000, input={"at": "{{slot}}", "ms": "{{slotMs}}"}))
    assert report.errors == [] and report.warnings == []


def test_invalid_cron():
    assert errors(trigger(schedule="61 * * * *")) == [
        "nightly.json: step 'cron': config.schedule: invalid cron expression '61 * * * *': bad minute field '61' "
        "(allowed: 0-59, with *, lists, ranges and /steps)"]


def test_unknown_time_zone():
    assert errors(trigger(schedule="0 * * * *", timezone="Mars/Olympus")) == [
        "nightly.json: step 'cron': config.timezone: unknown time zone 'Mars/Olympus' (an IANA name such as "
        "'Europe/Berlin' or 'UTC')"]


def test_negative_durations_and_every_problem_reported():
    assert errors(trigger(schedule="0 * * * *", catchupWindow=-1000, jitter="-5m", overlap="sometimes")) == [
        "nightly.json: step 'cron': config.overlap: unknown overlap policy 'sometimes' (expected one of skip, "
        "buffer_one, buffer_all, cancel_other, allow_all)",
        "nightly.json: step 'cron': config.catchupWindow: must not be negative",
        "nightly.json: step 'cron': config.jitter: must not be negative",
    ]


def test_missing_schedule():
    assert errors(trigger()) == [
        "nightly.json: step 'cron': config.schedule: is required: a cron expression (5 fields: minute hour "
        "day-of-month month day-of-week; or 6 with the seconds first)"]


def test_input_templates_read_slot_variables_only():
    # slot/slotMs are not warned about as unknown names; other names are errors
    assert errors(trigger(schedule="@daily", input={"x": "{{input.y}}", "ok": "{{slotLocal}}"})) == [
        "nightly.json: step 'cron': config.input.x: 'input' is not available in a schedule's input (its "
        "templates can read slot, slotMs, slotLocal, wfDefinitionId)"]


def test_warnings_for_typos_and_a_second_schedule():
    second = {**trigger(schedule="0 7 * * *"), "stepSlug": "cron2"}
    assert warnings(trigger(schedule="0 6 * * *", timeZone="Europe/Berlin"), second) == [
        "nightly.json: step 'cron': config.timeZone: not a scheduled-trigger field; ignored; did you mean "
        "'timezone'?",
        "nightly.json: step 'cron2': config.type: only the first scheduled trigger ('cron') sets the "
        "definition's schedule; this one is ignored",
        "nightly.json: step 'cron2': unreachable: no path from the first step 'cron' leads here",
    ]


def test_other_trigger_types_are_not_checked_as_schedules():
    manual = {**trigger(), "config": {"type": "manual", "schedule": "not cron"}}
    assert errors(manual) == []


def test_apply_and_load_refuse_an_invalid_schedule(tmp_path):
    path = tmp_path / "nightly.json"
    path.write_text(json.dumps({"name": "n", "steps": [trigger(schedule="* * * * *", timezone="Nowhere/Land"),
                                                       DONE]}))
    with pytest.raises(DefinitionError, match=r"^nightly.json: step 'cron': config.timezone: unknown time zone "
                                              r"'Nowhere/Land'"):
        load_definition(path)
