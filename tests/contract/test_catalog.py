"""The catalog: definitions and their versions, and the schedule state's compare-and-set."""

from __future__ import annotations

from wfctl.store.payload import content_hash

from .support import T0


def test_definitions(catalog):
    body = {"name": "Orders", "version": 2, "steps": [{"stepSlug": "a"}, {"stepSlug": "b"}]}
    assert catalog.list_definitions() == []
    assert catalog.put_definition("orders", body, now=T0)
    assert not catalog.put_definition("orders", body, now=T0 + 1)
    assert catalog.put_definition("alpha", {"name": "A", "steps": []}, now=T0 + 2)
    assert catalog.get_definition("orders") == body
    assert catalog.get_definition("nope") is None
    assert catalog.list_definitions() == [
        {"id": "alpha", "name": "A", "version": None, "updated_at": T0 + 2, "steps": 0,
         "hash": content_hash({"name": "A", "steps": []})},
        {"id": "orders", "name": "Orders", "version": "2", "updated_at": T0, "steps": 2, "hash": content_hash(body)},
    ]
    assert catalog.put_definition("orders", {**body, "name": "Orders v2"}, now=T0 + 3)
    assert catalog.list_definitions()[1]["updated_at"] == T0 + 3
    assert catalog.delete_definition("orders")
    assert not catalog.delete_definition("orders")
    assert [d["id"] for d in catalog.list_definitions()] == ["alpha"] and catalog.get_definition("orders") is None


def test_versions(catalog):
    """The catalog keeps every content as a version; ``replace=False`` (the start path) never
    overwrites an id that another process registered meanwhile."""
    v1, v2 = {"name": "A", "steps": []}, {"name": "B", "steps": [{"stepSlug": "s"}]}
    assert catalog.put_definition("d", v1, now=1.0, source="/a.json", replace=False)
    assert not catalog.put_definition("d", v2, now=2.0, replace=False)
    assert catalog.get_version("d").hash == content_hash(v1) and catalog.get_definition("d") == v1
    assert catalog.put_definition("d", v2, now=3.0, source="/b.json")
    assert not catalog.put_definition("d", {"steps": [{"stepSlug": "s"}], "name": "B"}, now=4.0)  # key order
    assert catalog.put_definition("d", v1, now=5.0)  # an older version made current again
    history = catalog.definition_history("d")
    assert [(v.hash, v.applied_at, v.current, v.source, v.steps, v.body) for v in history] == [
        (content_hash(v1), 5.0, True, "/a.json", 0, None), (content_hash(v2), 3.0, False, "/b.json", 1, None)]
    current = catalog.get_version("d")
    assert (current.hash, current.body, current.current, current.name) == (content_hash(v1), v1, True, "A")
    old = catalog.get_version("d", content_hash(v2))
    assert old.body == v2 and not old.current and catalog.get_version("d", "0" * 12) is None
    assert catalog.get_version("nope") is None and catalog.definition_history("nope") == []
    assert catalog.delete_definition("d")
    assert catalog.definition_history("d") == [] and catalog.get_version("d", content_hash(v2)) is None


def test_schedule_state_compare_and_set(catalog):
    assert catalog.get_schedule_state("d") is None
    assert catalog.put_schedule_state("d", 0, {"version": 1, "last_slot": 60.0}, now=T0)
    assert not catalog.put_schedule_state("d", 0, {"version": 1, "last_slot": 0.0}, now=T0)  # insert only when absent
    assert not catalog.put_schedule_state("d", 5, {"version": 6}, now=T0)  # stale version: nothing written
    assert catalog.get_schedule_state("d") == {"version": 1, "last_slot": 60.0}
    assert catalog.put_schedule_state("d", 1, {"version": 2, "last_slot": 120.0}, now=T0 + 1)
    assert catalog.get_schedule_state("d")["last_slot"] == 120.0
    assert not catalog.put_schedule_state("d", 1, {"version": 2}, now=T0 + 2)
    assert not catalog.put_schedule_state("other", 1, {"version": 2}, now=T0)  # no row to replace
    assert catalog.get_schedule_state("other") is None


def test_what_one_catalog_writes_another_reads(backend):
    with backend.open_catalog() as writer, backend.open_catalog() as reader:
        assert writer.put_definition("d", {"name": "D", "steps": []}, now=T0)
        assert reader.get_definition("d") == {"name": "D", "steps": []}
        assert reader.put_schedule_state("d", 0, {"version": 1}, now=T0)
        assert not writer.put_schedule_state("d", 0, {"version": 1}, now=T0)  # the other got there first
        assert writer.get_schedule_state("d") == {"version": 1}
