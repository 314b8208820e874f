"""Creating runs (idempotency, batches, the engine's start path) and reading them back (get, list, count, journal)."""

from __future__ import annotations

import pytest

from wfctl.errors import InputError
from wfctl.store import CANCELED, COMPLETED, FAILED, PENDING, RUNNING, JournalRow, NewRun, StepCommit
from wfctl.store.payload import encode

from .support import T0, ids, leased, make_runs, state


def test_create_and_get_run(store):
    run, created = store.create_run("e1", "wf", {"order": 7, "name": "Zoë"}, state("a"), timeout_s=60, now=T0,
                                    slot_time=T0 - 5, definition_version="abc123")
    assert created
    assert (run.status, run.shard, run.current_step, run.attempt, run.timeout_s) == (PENDING, 0, "a", 1, 60)
    assert (run.created_at, run.updated_at, run.started_at, run.completed_at) == (T0, T0, None, None)
    assert (run.slot_time, run.definition_version, run.finished) == (T0 - 5, "abc123", False)
    stored = store.get_run("e1")
    assert stored == run
    assert stored.input == {"order": 7, "name": "Zoë"} and stored.state == state("a")
    assert store.progress().queue_depth == 1
    g = leased(store)
    assert ids(store.claim_ready(g, now=T0, limit=10)) == ["e1"]  # queued, ready at its creation
    assert store.get_run("nope") is None
    assert store.journal("nope") == []


def test_idempotency_key_returns_the_existing_run(store):
    first, created = store.create_run("e1", "wf", {"a": 1}, state(), idempotency_key="k1", now=T0)
    again, created_again = store.create_run("e2", "wf", {"a": 2}, state(), idempotency_key="k1", now=T0 + 1)
    assert created and not created_again
    assert again.execution_id == "e1" and again.input == {"a": 1} and again.idempotency_key == "k1"
    assert store.get_run("e2") is None
    assert store.count_runs() == 1 and store.progress().queue_depth == 1


def test_a_finished_run_still_holds_its_key(store):
    store.create_run("e1", "wf", None, None, idempotency_key="k", now=T0)
    store.cancel_runs(["e1"], now=T0 + 1)
    run, created = store.create_run("e2", "wf", None, None, idempotency_key="k", now=T0 + 2)
    assert not created and (run.execution_id, run.status) == ("e1", CANCELED)


def test_same_execution_id_returns_the_existing_run(store):
    store.create_run("e1", "wf", {"a": 1}, None, now=T0)
    run, created = store.create_run("e1", "wf", {"a": 2}, None, now=T0)
    assert not created and run.input == {"a": 1}
    assert store.count_runs() == 1


def test_create_runs_in_order_with_duplicates(store):
    results = store.create_runs([NewRun(f"e{i}", "wf", {"i": i}, state()) for i in range(50)]
                                + [NewRun("dup", "wf", None, None, idempotency_key="k"),
                                   NewRun("dup2", "wf", None, None, idempotency_key="k"),
                                   NewRun("e7", "other", None, None)], now=T0)
    assert [created for _, created in results] == [True] * 51 + [False, False]
    assert [run.execution_id for run, _ in results] == [f"e{i}" for i in range(50)] + ["dup", "dup", "e7"]
    assert results[-1][0].input == {"i": 7}
    assert store.count_runs() == 51 and store.progress().queue_depth == 51
    assert store.create_runs([], now=T0) == []


def test_start_run_takes_encoded_values(store):
    """The engine's start path: input and state arrive encoded once, as payload.encode makes them."""
    value = {"name": "Zoë", "n": [1, 2.5, None]}
    eid, created = store.start_run("e1", "wf", encode(value, "input", 10**6), encode(state("a"), "state", 10**6),
                                   current_step="a", idempotency_key="k", timeout_s=30, now=T0, slot_time=T0 - 1,
                                   definition_version="v1")
    assert (eid, created) == ("e1", True)
    run = store.get_run("e1")
    assert (run.input, run.state, run.current_step, run.status) == (value, state("a"), "a", PENDING)
    assert (run.idempotency_key, run.timeout_s, run.slot_time, run.definition_version) == ("k", 30, T0 - 1, "v1")
    assert store.start_run("e2", "wf", encode(None, "input", 100), encode(None, "state", 100), current_step=None,
                           idempotency_key="k", now=T0) == ("e1", False)
    assert store.start_run("e1", "wf", encode(None, "input", 100), encode(None, "state", 100), current_step=None,
                           now=T0) == ("e1", False)
    assert store.count_runs() == 1


def test_not_json_serializable_input_is_an_input_error(store):
    with pytest.raises(InputError, match="input of run e1 is not JSON-serializable"):
        store.create_run("e1", "wf", {"when": object()}, None, now=T0)
    assert store.count_runs() == 0


def test_values_round_trip_small_and_large(store):
    """Values of every size come back as written, through every change (a store may keep large ones
    elsewhere: SQLite's suite settings send those over 2,000 bytes out of line)."""
    big = state(payload="y" * 6_000)
    store.create_run("e1", "wf", {"small": True}, big, now=T0)
    store.create_run("e2", "wf", {"big": "z" * 6_000, "nested": [{"é": None}]}, state(), now=T0)
    assert store.get_run("e1").state == big and store.get_run("e1").input == {"small": True}
    assert store.get_run("e2").input == {"big": "z" * 6_000, "nested": [{"é": None}]}
    assert {r.execution_id: len(str(r.input)) > 6_000 for r in store.list_runs()} == {"e1": False, "e2": True}
    g = leased(store)
    assert {r.execution_id: r.state for r in store.claim_ready(g, now=T0, limit=10)}["e1"] == big
    store.commit_steps(g, [StepCommit("e1", RUNNING, state("b"), "b", ready_at=T0)], now=T0 + 1)
    assert store.get_run("e1").state == state("b")  # large -> small
    store.commit_steps(g, [StepCommit("e1", RUNNING, big, "c", ready_at=T0)], now=T0 + 2)
    assert store.get_run("e1").state == big  # small -> large again
    store.commit_steps(g, [StepCommit("e2", COMPLETED, None, None, output={"o": "w" * 6_000},
                                      journal=[JournalRow("a", "x", COMPLETED, output={"big": "q" * 6_000})])],
                       now=T0 + 1)
    done = store.get_run("e2")
    assert (done.state, done.output) == (None, {"o": "w" * 6_000})
    assert store.journal("e2")[0].output == {"big": "q" * 6_000}
    assert store.list_runs(statuses=[COMPLETED])[0].output == {"o": "w" * 6_000}


def test_list_runs_newest_first_with_filters(store):
    for i in range(5):
        store.create_run(f"a{i}", "wf-a", None, None, now=T0 + i)
        store.create_run(f"b{i}", "wf-b", None, None, now=T0 + i + 0.5)
    store.cancel_runs(["a1", "b1"], now=T0 + 10)
    assert ids(store.list_runs(limit=3)) == ["b4", "a4", "b3"]
    assert ids(store.list_runs(definition_id="wf-a")) == ["a4", "a3", "a2", "a1", "a0"]
    assert ids(store.list_runs(statuses=[CANCELED])) == ["b1", "a1"]
    assert ids(store.list_runs(finished_since=T0 + 10)) == ["b1", "a1"]  # unfinished runs never match
    assert ids(store.list_runs(definition_id="wf-a", finished_since=T0 + 10)) == ["a1"]
    assert ids(store.list_runs(statuses=[CANCELED], finished_since=T0 + 10.5)) == []
    assert ids(store.list_runs(statuses=[PENDING], definition_id="wf-b", limit=2)) == ["b4", "b3"]
    assert ids(store.list_runs(statuses=[COMPLETED, FAILED])) == []
    assert ids(store.list_runs(definition_id="nope")) == []
    assert all(r.state is None for r in store.list_runs())
    assert store.count_runs() == 10
    assert store.count_runs(statuses=[PENDING]) == 8
    assert store.count_runs(statuses=[CANCELED], definition_id="wf-a") == 1
    assert store.count_runs(definition_id="wf-b") == 5
    with pytest.raises(InputError, match="'done'"):
        store.list_runs(statuses=["done"])
    with pytest.raises(InputError, match="'done'"):
        store.count_runs(statuses=["done"])


def test_list_runs_pages_through_ties(store):
    store.create_runs([NewRun(f"e{i:02d}", "wf", None, None) for i in range(25)], now=T0)
    store.create_runs([NewRun(f"f{i:02d}", "wf", None, None) for i in range(5)], now=T0 + 1)
    for statuses, definition_id in ((None, None), ([PENDING], None), (None, "wf")):
        seen, before = [], None
        while page := store.list_runs(statuses, definition_id, limit=7, before=before):
            seen += ids(page)
            before = (page[-1].created_at, page[-1].execution_id)
        assert seen == [f"f{i:02d}" for i in reversed(range(5))] + [f"e{i:02d}" for i in reversed(range(25))]


def test_count_runs_finished_before(store):
    make_runs(store, 4)
    g = leased(store)
    store.commit_steps(g, [StepCommit("wf-0", COMPLETED, None, None)], now=T0 + 10)
    store.commit_steps(g, [StepCommit("wf-1", FAILED, None, None, error="boom")], now=T0 + 20)
    store.cancel_runs(["wf-2"], now=T0 + 30)
    assert store.count_runs(finished_before=T0 + 10) == 0
    assert store.count_runs(finished_before=T0 + 10.5) == 1
    assert store.count_runs(finished_before=T0 + 31) == 3
    assert store.count_runs([FAILED, CANCELED], finished_before=T0 + 31) == 2
    assert store.count_runs(definition_id="other", finished_before=T0 + 31) == 0


def test_journal_pages_counts_and_steps(store):
    make_runs(store, 1)
    g = leased(store)
    rows = []
    for i in range(12):
        rows.append(JournalRow(f"s{i}", "action", "started", started_at=T0 + i))
        if i != 5:  # s5 never finished (its worker died); s6 follows it
            rows.append(JournalRow(f"s{i}", "action", COMPLETED, port="success", output={"i": i},
                                   started_at=T0 + i, finished_at=T0 + i + 0.5))
    rows.append(JournalRow("log", "log", COMPLETED))
    store.commit_steps(g, [StepCommit("wf-0", RUNNING, state("x"), "x", journal=rows)], now=T0 + 20)
    journal = store.journal("wf-0")
    assert [j.seq for j in journal] == list(range(1, len(rows) + 1))
    assert [(j.step_slug, j.status) for j in journal] == [(r.step_slug, r.status) for r in rows]
    assert journal[1].output == {"i": 0} and journal[1].port == "success" and journal[1].finished_at == T0 + 0.5
    assert store.journal_count("wf-0") == 24 and store.journal_count("nope") == 0
    assert store.journal_steps("wf-0") == 13  # 11 folded pairs, the unfinished s5, the log row
    assert store.journal_steps("nope") == 0
    pages, after = [], 0
    while page := store.journal_page("wf-0", after_seq=after, limit=5):
        pages.append([j.seq for j in page])
        after = page[-1].seq
    assert pages == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12, 13, 14, 15], [16, 17, 18, 19, 20], [21, 22, 23, 24]]
    assert store.journal_page("wf-0", after_seq=10, limit=1) == [journal[10]]
    assert store.journal_page("nope") == []
