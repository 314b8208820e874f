"""Schedules: cron-triggered definitions (a trigger step with ``type: scheduled``).

Pure logic only: parsing and checking a schedule (:mod:`.spec`), the slots a cron expression
gives in a time zone (:mod:`.cron`), the overlap policies (:mod:`.policy`) and planning which
slots start, are skipped or wait (:mod:`.planner`). Time always comes in as a parameter
(epoch seconds); the scheduler loop that reads the clock, stores the state and starts runs
builds on these.
"""

from .cron import CronError, iter_slots, next_slots, parse_cron, slots_between, utc_iso
from .planner import (
    MAX_SLOTS_PER_PLAN,
    Plan,
    ScheduleState,
    SkipReason,
    SlotSkip,
    SlotStart,
    acknowledge,
    backfill_slots,
    jitter_delay,
    plan,
    render_input,
    slot_key,
)
from .policy import MAX_BUFFERED, Action, Decision, Overlap, decide, parse_overlap
from .spec import (
    DEFAULT_CATCHUP_WINDOW_S,
    DEFAULT_JITTER_S,
    DEFAULT_OVERLAP,
    DEFAULT_TIMEZONE,
    MIN_CATCHUP_WINDOW_S,
    SLOT_VARIABLES,
    ScheduleSpec,
    ScheduleSpecError,
    is_scheduled_trigger,
    schedule_of,
    trigger_warnings,
)

__all__ = [
    "DEFAULT_CATCHUP_WINDOW_S", "DEFAULT_JITTER_S", "DEFAULT_OVERLAP", "DEFAULT_TIMEZONE", "MAX_BUFFERED",
    "MAX_SLOTS_PER_PLAN", "MIN_CATCHUP_WINDOW_S", "SLOT_VARIABLES", "Action", "CronError", "Decision", "Overlap",
    "Plan", "ScheduleSpec", "ScheduleSpecError", "ScheduleState", "SkipReason", "SlotSkip", "SlotStart",
    "acknowledge", "backfill_slots", "decide", "is_scheduled_trigger", "iter_slots", "jitter_delay",
    "next_slots", "parse_cron", "parse_overlap", "plan", "render_input", "schedule_of", "slot_key",
    "slots_between", "trigger_warnings", "utc_iso",
]
