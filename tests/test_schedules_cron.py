"""Cron slots: DST days in Europe/Berlin and America/New_York, 6-field expressions, and properties."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wfctl.schedules import ScheduleSpec, iter_slots, next_slots, slots_between, utc_iso

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"
# 2025's transitions: Berlin 30 Mar (02:00 -> 03:00) and 26 Oct (03:00 -> 02:00);
# New York 9 Mar (02:00 -> 03:00) and 2 Nov (02:00 -> 01:00).
BERLIN_SPRING, BERLIN_FALL = date(2025, 3, 30), date(2025, 10, 26)
NY_SPRING, NY_FALL = date(2025, 3, 9), date(2025, 11, 2)


def day_slots(cron: str, tz: str, day: date) -> list[float]:
    """The slots from local midnight (included) to the next local midnight (excluded)."""
    zone = ZoneInfo(tz)
    start = datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone).timestamp()
    return slots_between(ScheduleSpec("d", cron, tz), start - 1, end - 1)


def utc(slots):
    return [utc_iso(s)[11:16] for s in slots]  # HH:MM in UTC


def wall(slots, tz):
    return [datetime.fromtimestamp(s, ZoneInfo(tz)).strftime("%H:%M%z") for s in slots]


def assert_distinct_increasing(slots):
    assert all(a < b for a, b in zip(slots, slots[1:]))


# --- spring forward -------------------------------------------------------------------------------

def test_berlin_spring_forward_hourly_has_23_slots_one_per_real_hour():
    slots = day_slots("0 * * * *", BERLIN, BERLIN_SPRING)
    assert len(slots) == 23
    assert {b - a for a, b in zip(slots, slots[1:])} == {3600}  # no hour skipped, none doubled
    assert wall(slots, BERLIN)[:4] == ["00:00+0100", "01:00+0100", "03:00+0200", "04:00+0200"]
    assert utc(slots)[:4] == ["23:00", "00:00", "01:00", "02:00"]
    assert utc(slots)[-1] == "21:00"


def test_berlin_spring_forward_every_30_minutes_has_46_slots():
    slots = day_slots("*/30 * * * *", BERLIN, BERLIN_SPRING)
    assert len(slots) == 46
    assert {b - a for a, b in zip(slots, slots[1:])} == {1800}
    assert wall(slots, BERLIN)[2:6] == ["01:00+0100", "01:30+0100", "03:00+0200", "03:30+0200"]


def test_berlin_spring_forward_daily_0230_fires_once_at_0300():
    slots = day_slots("30 2 * * *", BERLIN, BERLIN_SPRING)
    assert wall(slots, BERLIN) == ["03:00+0200"] and utc(slots) == ["01:00"]
    assert wall(day_slots("0 2 * * *", BERLIN, BERLIN_SPRING), BERLIN) == ["03:00+0200"]
    # two times in the gap merge into one slot, and a real 03:00 slot is not doubled
    assert wall(day_slots("0,30 2 * * *", BERLIN, BERLIN_SPRING), BERLIN) == ["03:00+0200"]
    assert wall(day_slots("30 2,3 * * *", BERLIN, BERLIN_SPRING), BERLIN) == ["03:00+0200", "03:30+0200"]
    assert wall(day_slots("0 2,3 * * *", BERLIN, BERLIN_SPRING), BERLIN) == ["03:00+0200"]
    # times outside the gap are untouched
    assert wall(day_slots("30 1 * * *", BERLIN, BERLIN_SPRING), BERLIN) == ["01:30+0100"]
    assert wall(day_slots("30 3 * * *", BERLIN, BERLIN_SPRING), BERLIN) == ["03:30+0200"]


def test_berlin_spring_forward_wildcard_hour_job_has_no_slot_in_the_gap():
    slots = day_slots("30 */2 * * *", BERLIN, BERLIN_SPRING)  # a wildcard job: 02:30 does not exist
    assert wall(slots, BERLIN)[:3] == ["00:30+0100", "04:30+0200", "06:30+0200"]
    assert len(slots) == 11


def test_new_york_spring_forward():
    hourly = day_slots("0 * * * *", NEW_YORK, NY_SPRING)
    assert len(hourly) == 23 and {b - a for a, b in zip(hourly, hourly[1:])} == {3600}
    assert wall(hourly, NEW_YORK)[:4] == ["00:00-0500", "01:00-0500", "03:00-0400", "04:00-0400"]
    assert len(day_slots("*/30 * * * *", NEW_YORK, NY_SPRING)) == 46
    daily = day_slots("30 2 * * *", NEW_YORK, NY_SPRING)
    assert wall(daily, NEW_YORK) == ["03:00-0400"] and utc(daily) == ["07:00"]


# --- fall back ------------------------------------------------------------------------------------

def test_berlin_fall_back_hourly_has_25_slots_one_per_real_hour():
    slots = day_slots("0 * * * *", BERLIN, BERLIN_FALL)
    assert len(slots) == 25
    assert {b - a for a, b in zip(slots, slots[1:])} == {3600}
    assert wall(slots, BERLIN)[1:5] == ["01:00+0200", "02:00+0200", "02:00+0100", "03:00+0100"]
    assert utc(slots)[:5] == ["22:00", "23:00", "00:00", "01:00", "02:00"]


def test_berlin_fall_back_every_30_minutes_has_50_slots():
    slots = day_slots("*/30 * * * *", BERLIN, BERLIN_FALL)
    assert len(slots) == 50
    assert {b - a for a, b in zip(slots, slots[1:])} == {1800}
    assert wall(slots, BERLIN)[4:10] == ["02:00+0200", "02:30+0200", "02:00+0100", "02:30+0100",
                                         "03:00+0100", "03:30+0100"]


def test_berlin_fall_back_daily_0230_fires_once_at_the_first_0230():
    slots = day_slots("30 2 * * *", BERLIN, BERLIN_FALL)
    assert wall(slots, BERLIN) == ["02:30+0200"] and utc(slots) == ["00:30"]
    assert wall(day_slots("0 2 * * *", BERLIN, BERLIN_FALL), BERLIN) == ["02:00+0200"]
    assert wall(day_slots("15 2,3 * * *", BERLIN, BERLIN_FALL), BERLIN) == ["02:15+0200", "03:15+0100"]


def test_fixed_time_slot_already_fired_is_not_fired_again_from_inside_the_repeated_hour():
    s = ScheduleSpec("d", "30 2 * * *", BERLIN)
    second_0210 = datetime(2025, 10, 26, 1, 10, tzinfo=timezone.utc).timestamp()  # 02:10 CET, the 2nd time
    first = next_slots(s, second_0210, 1)[0]
    assert utc_iso(first) == "2025-10-27T01:30:00Z"  # the next day's 02:30 CET, not 02:30 again today


def test_new_york_fall_back():
    hourly = day_slots("0 * * * *", NEW_YORK, NY_FALL)
    assert len(hourly) == 25 and {b - a for a, b in zip(hourly, hourly[1:])} == {3600}
    assert wall(hourly, NEW_YORK)[1:4] == ["01:00-0400", "01:00-0500", "02:00-0500"]
    assert len(day_slots("*/30 * * * *", NEW_YORK, NY_FALL)) == 50
    once = day_slots("30 1 * * *", NEW_YORK, NY_FALL)
    assert wall(once, NEW_YORK) == ["01:30-0400"] and utc(once) == ["05:30"]
    assert wall(day_slots("30 2 * * *", NEW_YORK, NY_FALL), NEW_YORK) == ["02:30-0500"]


@pytest.mark.parametrize("tz, first_day", [(BERLIN, date(2025, 3, 27)), (BERLIN, date(2025, 10, 23)),
                                           (NEW_YORK, date(2025, 3, 6)), (NEW_YORK, date(2025, 10, 30))])
def test_a_daily_job_fires_once_a_day_through_a_transition_week(tz, first_day):
    for cron in ("30 2 * * *", "30 1 * * *", "0 3 * * *", "59 23 * * *", "0 0 * * *"):
        slots = []
        for i in range(7):
            got = day_slots(cron, tz, first_day + timedelta(days=i))
            assert len(got) == 1, (cron, first_day + timedelta(days=i), wall(got, tz))
            slots += got
        assert_distinct_increasing(slots)


# --- 6 fields, macros, windows --------------------------------------------------------------------

def test_six_fields_seconds_first():
    s = ScheduleSpec("d", "*/20 * * * * *")
    t0 = datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp()
    assert [x - t0 for x in next_slots(s, t0, 5)] == [20, 40, 60, 80, 100]
    assert [x - t0 for x in next_slots(ScheduleSpec("d", "15,45 0 * * * *"), t0, 3)] == [15, 45, 3615]


def test_six_fields_follow_the_same_dst_rules():
    assert wall(day_slots("0 30 2 * * *", BERLIN, BERLIN_SPRING), BERLIN) == ["03:00+0200"]
    assert [utc_iso(x) for x in day_slots("10,50 30 2 * * *", BERLIN, BERLIN_FALL)] == [
        "2025-10-26T00:30:10Z", "2025-10-26T00:30:50Z"]
    assert len(day_slots("0 0 * * * *", BERLIN, BERLIN_FALL)) == 25
    assert len(day_slots("30 */30 * * * *", NEW_YORK, NY_SPRING)) == 46


def test_macros():
    t0 = datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp()
    assert [utc_iso(x) for x in next_slots(ScheduleSpec("d", "@daily"), t0, 2)] == [
        "2025-01-02T00:00:00Z", "2025-01-03T00:00:00Z"]
    assert [utc_iso(x) for x in next_slots(ScheduleSpec("d", "@hourly", BERLIN), t0, 1)] == ["2025-01-01T01:00:00Z"]


def test_window_is_exclusive_of_after_and_inclusive_of_until():
    s = ScheduleSpec("d", "0 * * * *")
    t = datetime(2025, 1, 1, 5, tzinfo=timezone.utc).timestamp()
    assert slots_between(s, t, t + 3600) == [t + 3600]
    assert slots_between(s, t - 0.5, t) == [t]
    assert slots_between(s, t + 0.5, t + 3599.9) == []
    assert slots_between(s, t, t) == []
    assert next_slots(s, t, 0) == []


def test_a_stepped_range_of_one_value_is_that_value():
    # cronsim alone would read 5-5/20 as 5/20 (5, 25, 45)
    t0 = datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp()
    assert [x - t0 for x in next_slots(ScheduleSpec("d", "5-5/20 * * * *"), t0, 2)] == [300, 3900]


def test_day_of_week_and_day_of_month_or_rule():
    s = ScheduleSpec("d", "0 0 13 * FRI")  # the 13th, or any Friday
    t0 = datetime(2025, 6, 1, tzinfo=timezone.utc).timestamp()
    days = [datetime.fromtimestamp(x, timezone.utc).day for x in next_slots(s, t0 - 1, 6)]
    assert days == [6, 13, 20, 27, 4, 11]


# --- properties -----------------------------------------------------------------------------------

ZONES = ["UTC", BERLIN, NEW_YORK, "Australia/Lord_Howe", "Asia/Kolkata"]


def field(lo: int, hi: int):
    num = st.integers(lo, hi)
    rng = st.tuples(num, num).map(sorted)
    return st.one_of(
        st.just("*"),
        st.integers(1, hi - lo).map(lambda k: f"*/{k}"),
        num.map(str),
        rng.map(lambda ab: f"{ab[0]}-{ab[1]}"),
        st.tuples(rng, st.integers(1, 7)).map(lambda x: f"{x[0][0]}-{x[0][1]}/{x[1]}"),
        st.lists(num, min_size=2, max_size=3).map(lambda xs: ",".join(map(str, xs))),
    )


cron_exprs = st.tuples(
    st.one_of(st.none(), field(0, 59)), field(0, 59), field(0, 23), field(1, 28), field(1, 12), field(0, 6))


def values(text: str, lo: int, hi: int) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        rng, _, step = part.partition("/")
        if rng == "*":
            a, b = lo, hi
        elif "-" in rng:
            a, b = map(int, rng.split("-"))
        else:
            a = int(rng)
            b = hi if step else a
        out.update(range(a, b + 1, int(step) if step else 1))
    return out


def matches_day(fields, moment: datetime) -> bool:
    _, _, _, dom, month, dow = fields
    if moment.month not in values(month, 1, 12):
        return False
    dom_ok = moment.day in values(dom, 1, 31)
    dow_ok = (moment.weekday() + 1) % 7 in values(dow, 0, 6)
    if dom.startswith("*") or dow.startswith("*"):
        return dom_ok and dow_ok
    return dom_ok or dow_ok


def matches(fields, moment: datetime) -> bool:
    second, minute, hour = fields[:3]
    return (moment.second in values(second or "0", 0, 59) and moment.minute in values(minute, 0, 59)
            and moment.hour in values(hour, 0, 23) and matches_day(fields, moment))


def text(fields) -> str:
    return " ".join(f for f in fields if f is not None)


PROPS = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
START = datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp()


@PROPS
@given(fields=cron_exprs, tz=st.sampled_from(ZONES), after=st.integers(0, 3 * 366 * 86400),
       length=st.integers(0, 3 * 86400), frac=st.floats(0, 0.999))
def test_slots_increase_lie_in_the_window_and_match_the_cron(fields, tz, after, length, frac):
    after = START + after + frac
    until = after + length
    spec = ScheduleSpec("d", text(fields), tz)
    slots = slots_between(spec, after, until)
    assert all(a < b for a, b in zip(slots, slots[1:]))
    assert all(after < s <= until and s == int(s) for s in slots)
    zone = ZoneInfo(tz)
    fixed_time = not fields[1].startswith("*") and not fields[2].startswith("*")
    for s in slots:
        moment = datetime.fromtimestamp(s, zone)
        if matches(fields, moment):
            continue
        # the only other slots: a fixed-time job's time that a spring-forward gap skipped,
        # fired at the first instant after the gap (the transition itself)
        before = datetime.fromtimestamp(s - 1, zone)
        assert fixed_time and before.utcoffset() < moment.utcoffset(), (text(fields), tz, utc_iso(s))
        assert matches_day(fields, moment)
    if fixed_time:  # a fixed-time job never fires twice at the same wall-clock time
        walls = [datetime.fromtimestamp(s, zone).replace(tzinfo=None) for s in slots]
        assert len(walls) == len(set(walls))


@PROPS
@given(fields=cron_exprs, tz=st.sampled_from(ZONES), after=st.integers(0, 3 * 366 * 86400),
       cuts=st.lists(st.integers(0, 2 * 86400), min_size=2, max_size=2))
def test_windows_add_up(fields, tz, after, cuts):
    a = START + after
    b, c = (a + x for x in sorted(cuts))
    spec = ScheduleSpec("d", text(fields), tz)
    assert slots_between(spec, a, c) == slots_between(spec, a, b) + slots_between(spec, b, c)


@PROPS
@given(fields=cron_exprs, after=st.integers(0, 3 * 366 * 86400), minutes=st.integers(0, 360))
def test_utc_slots_are_exactly_the_matching_seconds(fields, after, minutes):
    a = START + after
    b = a + minutes * 60
    spec = ScheduleSpec("d", text(fields))
    expected = []
    first_minute = (a // 60) * 60
    for m in range(int(first_minute), int(b) + 1, 60):
        moment = datetime.fromtimestamp(m, timezone.utc)
        if matches((None, *fields[1:]), moment):
            expected += [m + sec for sec in sorted(values(fields[0] or "0", 0, 59)) if a < m + sec <= b]
    assert slots_between(spec, a, b) == expected


def test_iter_slots_is_lazy_and_unbounded():
    it = iter_slots(ScheduleSpec("d", "* * * * * *"), START)
    assert [next(it) - START for _ in range(3)] == [1, 2, 3]
