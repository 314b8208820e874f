"""ScheduleSpec: parsing a scheduled trigger's config, defaults, and one-line errors naming the field."""

from __future__ import annotations

import pytest

from helpers import definition, step
from wfctl.errors import DefinitionError
from wfctl.schedules import (
    DEFAULT_CATCHUP_WINDOW_S,
    MIN_CATCHUP_WINDOW_S,
    CronError,
    Overlap,
    ScheduleSpec,
    ScheduleSpecError,
    parse_cron,
    parse_overlap,
    schedule_of,
    trigger_warnings,
)


def spec(**config):
    return ScheduleSpec.from_trigger("nightly", {"type": "scheduled", **config})


def error(**config) -> str:
    with pytest.raises(ScheduleSpecError) as info:
        spec(**config)
    assert isinstance(info.value, DefinitionError)
    return str(info.value)


def test_defaults():
    s = spec(schedule="30 2 * * *")
    assert s == ScheduleSpec("nightly", "30 2 * * *", "UTC", Overlap.SKIP, 3600.0, 0.0, None)
    assert DEFAULT_CATCHUP_WINDOW_S == 3600.0
    assert (s.overlap, s.catchup_window_s, s.jitter_s, s.input, s.timezone) == ("skip", 3600.0, 0.0, None, "UTC")
    assert spec(schedule="@daily", timezone=None).timezone == "UTC"


def test_all_fields():
    s = spec(schedule=" */5 * * * * ", timezone="Europe/Berlin", overlap="buffer_all", catchupWindow=90_000,
             jitter="1m30s", input={"day": "{{slot}}"})
    assert (s.cron, s.timezone, s.overlap, s.catchup_window_s, s.jitter_s, s.input) == (
        "*/5 * * * *", "Europe/Berlin", Overlap.BUFFER_ALL, 90.0, 90.0, {"day": "{{slot}}"})


@pytest.mark.parametrize("value, seconds", [
    (0, 0.0), (1500, 1.5), (600_000, 600.0), (2.5, 0.0025),        # numbers are milliseconds (tale's unit)
    ("500ms", 0.5), ("30s", 30.0), ("10m", 600.0), ("2h", 7200.0), ("7d", 604800.0), ("1h30m", 5400.0),
    (" 1w ", 604800.0),
])
def test_durations(value, seconds):
    assert spec(schedule="* * * * *", catchupWindow=value).catchup_window_s == seconds
    assert spec(schedule="* * * * *", jitter=value).jitter_s == seconds


@pytest.mark.parametrize("field", ["catchupWindow", "jitter"])
@pytest.mark.parametrize("value", [-1, -0.5, "-5m", " -1h"])
def test_negative_durations(field, value):
    assert error(schedule="* * * * *", **{field: value}) == f"config.{field}: must not be negative"


def test_bad_durations():
    assert error(schedule="* * * * *", jitter="90") == (
        "config.jitter: '90' has no unit: write a number of milliseconds (90) or a duration with a unit "
        "such as '90s' or '90m'")
    assert error(schedule="* * * * *", catchupWindow="soon") == (
        "config.catchupWindow: 'soon' is not a duration (examples: 500ms, 30s, 10m, 2h, 7d, 1h30m)")
    assert error(schedule="* * * * *", catchupWindow=True).startswith(
        "config.catchupWindow: must be a duration (milliseconds as a number, or a string")
    assert error(schedule="* * * * *", jitter=float("inf")) == (
        "config.jitter: must be a finite number of milliseconds, got inf")


@pytest.mark.parametrize("cron, message", [
    ("61 * * * *", "bad minute field '61' (allowed: 0-59, with *, lists, ranges and /steps)"),
    ("* 24 * * *", "bad hour field '24' (allowed: 0-23, with *, lists, ranges and /steps)"),
    ("* * 0 * *", "bad day-of-month field '0' (allowed: 1-31, L, LW, with *, lists, ranges and /steps)"),
    ("* * * 13 *", "bad month field '13' (allowed: 1-12 or JAN-DEC, with *, lists, ranges and /steps)"),
    ("* * * * FUNDAY", "bad day-of-week field 'FUNDAY' (allowed: 0-7 or SUN-SAT, 5L, 1#2, with *, lists, "
                       "ranges and /steps)"),
    ("60 * * * * *", "bad second field '60' (allowed: 0-59, with *, lists, ranges and /steps)"),
    ("*/0 * * * *", "bad minute field '*/0' (allowed: 0-59, with *, lists, ranges and /steps)"),
    ("5-1 * * * *", "bad minute field '5-1' (allowed: 0-59, with *, lists, ranges and /steps)"),
    ("* * *", "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with the seconds first, got 3"),
    ("* * * * * * *", "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with the seconds "
                      "first, got 7"),
    ("@fortnightly", "unknown macro '@fortnightly' (known: @yearly, @annually, @monthly, @weekly, @daily, "
                     "@midnight, @hourly)"),
])
def test_invalid_cron(cron, message):
    assert error(schedule=cron) == f"config.schedule: invalid cron expression '{cron}': {message}"


def test_cron_that_never_matches():
    assert error(schedule="0 0 30 2 *").startswith("config.schedule: invalid cron expression '0 0 30 2 *': bad "
                                                   "day-of-month field '30'")


def test_missing_or_mistyped_schedule():
    required = ("config.schedule: is required: a cron expression (5 fields: minute hour day-of-month month "
                "day-of-week; or 6 with the seconds first)")
    assert error() == required
    assert error(schedule="") == required
    assert error(schedule=5) == "config.schedule: must be a cron expression string, got number 5"


def test_five_and_six_fields_and_macros():
    assert parse_cron("30 2 * * *").seconds == (0,)
    six = parse_cron("*/20 30 2 * * *")  # seconds come first
    assert (six.minutes, six.seconds) == ("30 2 * * *", (0, 20, 40))
    assert parse_cron("@hourly").minutes == "0 * * * *"
    assert parse_cron("@DAILY").minutes == "0 0 * * *"
    assert parse_cron("0 9 * jan-mar mon-fri").minutes == "0 9 * jan-mar mon-fri"
    with pytest.raises(CronError):
        parse_cron("nonsense")


def test_unknown_time_zone():
    assert error(schedule="* * * * *", timezone="Mars/Olympus") == (
        "config.timezone: unknown time zone 'Mars/Olympus' (an IANA name such as 'Europe/Berlin' or 'UTC')")
    assert error(schedule="* * * * *", timezone="Europe/Berln") == (
        "config.timezone: unknown time zone 'Europe/Berln'; did you mean 'Europe/Berlin'?")
    assert error(schedule="* * * * *", timezone="../../etc/passwd").startswith(
        "config.timezone: unknown time zone '../../etc/passwd'")
    assert error(schedule="* * * * *", timezone=2).startswith("config.timezone: must be an IANA time zone name")


@pytest.mark.parametrize("written", ["buffer_one", "bufferOne", "BUFFER_ONE", "buffer-one", "BufferOne",
                                     "SCHEDULE_OVERLAP_POLICY_BUFFER_ONE"])
def test_overlap_spellings(written):
    assert spec(schedule="* * * * *", overlap=written).overlap is Overlap.BUFFER_ONE


def test_bad_overlap():
    assert error(schedule="* * * * *", overlap="queue") == (
        "config.overlap: unknown overlap policy 'queue' (expected one of skip, buffer_one, buffer_all, "
        "cancel_other, allow_all)")
    assert error(schedule="* * * * *", overlap="terminate_other").startswith(
        "config.overlap: 'terminate_other' is not supported: wfctl cancels runs but cannot terminate them; "
        "use cancel_other")
    with pytest.raises(ValueError):
        parse_overlap(3)


def test_input_must_be_an_object_reading_slot_variables():
    assert error(schedule="* * * * *", input=[1]) == "config.input: must be an object (the run input), got an array"
    assert error(schedule="* * * * *", input={"a": {"b": "{{input.x}}"}}) == (
        "config.input.a.b: 'input' is not available in a schedule's input (its templates can read slot, slotMs, "
        "slotLocal, wfDefinitionId)")
    assert error(schedule="* * * * *", input={"a": "{{slot"}).startswith("config.input.a: invalid template")
    ok = spec(schedule="* * * * *", input={"at": "{{slot}}", "ms": "{{slotMs + 1}}", "n": 3, "l": ["{{slotLocal}}"]})
    assert ok.input["n"] == 3


def test_every_problem_is_collected_first_one_is_the_message():
    with pytest.raises(ScheduleSpecError) as info:
        spec(schedule="61 * * * *", timezone="Mars/Olympus", catchupWindow=-1, jitter=-1, overlap="x")
    assert [f for f, _ in info.value.issues] == [
        "config.schedule", "config.timezone", "config.overlap", "config.catchupWindow", "config.jitter"]
    assert info.value.field == "config.schedule"
    assert str(info.value).startswith("config.schedule: invalid cron expression '61 * * * *'")


def test_type_must_be_scheduled_and_config_an_object():
    with pytest.raises(ScheduleSpecError, match=r"^config.type: must be 'scheduled'"):
        ScheduleSpec.from_trigger("d", {"type": "manual", "schedule": "* * * * *"})
    with pytest.raises(ScheduleSpecError, match="^config: must be an object"):
        ScheduleSpec.from_trigger("d", None)


def test_direct_construction_is_checked_too():
    with pytest.raises(ScheduleSpecError, match="config.catchupWindow: must not be negative"):
        ScheduleSpec("d", "* * * * *", catchup_window_s=-1)
    with pytest.raises(ScheduleSpecError, match="config.timezone: unknown time zone"):
        ScheduleSpec("d", "* * * * *", "Nowhere/City")
    assert ScheduleSpec("d", "* * * * *", overlap="allow_all").overlap is Overlap.ALLOW_ALL


def test_effective_catchup_window_has_a_floor():
    assert spec(schedule="* * * * *", catchupWindow=0).effective_catchup_window_s == MIN_CATCHUP_WINDOW_S == 10
    assert spec(schedule="* * * * *", catchupWindow="1m").effective_catchup_window_s == 60


def test_trigger_warnings_name_likely_typos():
    assert trigger_warnings({"type": "scheduled", "schedule": "x", "timeZone": "UTC", "foo": 1}) == [
        ("config.timeZone", "not a scheduled-trigger field; ignored; did you mean 'timezone'?"),
        ("config.foo", "not a scheduled-trigger field; ignored (known: type, schedule, timezone, overlap, "
                       "catchupWindow, jitter, input)"),
    ]


def test_schedule_of_takes_the_first_scheduled_trigger():
    d = definition([
        step("manual", "trigger", {"type": "manual"}, {"success": "a"}),
        step("cron", "trigger", {"type": "scheduled", "schedule": "0 6 * * *", "timezone": "America/New_York"},
             {"success": "a"}),
        step("cron2", "trigger", {"type": "scheduled", "schedule": "0 7 * * *"}, {"success": "a"}),
        step("a", "output", {"mapping": {}}),
    ], id="morning")
    s = schedule_of(d)
    assert (s.definition_id, s.cron, s.timezone) == ("morning", "0 6 * * *", "America/New_York")
    assert schedule_of(definition([step("s", "start")])) is None
    with pytest.raises(ScheduleSpecError):
        schedule_of(definition([step("t", "trigger", {"type": "scheduled", "schedule": "bad"})]))


def test_spec_is_hashable_without_input():
    assert hash(spec(schedule="* * * * *", input={"a": 1})) == hash(spec(schedule="* * * * *", input={"a": 2}))
