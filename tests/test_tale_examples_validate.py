"""tale's 14 shipped definitions: each loads, and each verdict is right for the right reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from wfctl.definitions import parse_definition, validate_file

TALE_EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "tale-examples"

pytestmark = pytest.mark.skipif(not TALE_EXAMPLES.is_dir(), reason="../shared/tale-examples is not present")

FAILURE_PORT = ("nextSteps port '{port}' is not valid for an action step (expected success); "
                "tale never emits this port; the step's failure fails the run")

# Only these two are broken: ports tale never emits.
EXPECTED_ERRORS = {
    "circuly/sync-subscriptions.json": [
        "sync-subscriptions.json: step 'update_cursor_and_fetch_next': " + FAILURE_PORT.format(port="default"),
    ],
    "onedrive/sync.json": [
        f"sync.json: step '{slug}': " + FAILURE_PORT.format(port="failure")
        for slug in ("refresh_token", "read_onedrive_file", "list_folder_contents", "sync_folder_files",
                     "upload_to_storage")
    ],
}

# Exact warnings for the examples tale-format.md calls stale.
EXPECTED_WARNINGS = {
    "general/document-rag-sync.json": [
        "document-rag-sync.json: step 'find_unprocessed_document': config.parameters.backoffHours: "
        "'{{backoffHours}}' resolves to undefined; did you mean config.backoffHours?",
    ],
    "general/conversation-auto-archive.json": [
        "conversation-auto-archive.json: step 'find_stale_conversation': config.parameters.backoffHours: "
        "'{{backoffHours}}' resolves to undefined; did you mean config.backoffHours?",
        # only the {{...}} tag of the filterExpression is a template, not `status` or `daysAgo(...)`
        "conversation-auto-archive.json: step 'find_stale_conversation': config.parameters.filterExpression: "
        "'{{staleDays}}' resolves to undefined; did you mean config.staleDays?",
        "conversation-auto-archive.json: step 'archive_conversation': config.parameters.conversationId: "
        "'{{currentConversationId}}' resolves to undefined; did you mean variables.currentConversationId?",
        "conversation-auto-archive.json: step 'record_processed': config.parameters.recordId: "
        "'{{currentConversationId}}' resolves to undefined; did you mean variables.currentConversationId?",
        "conversation-auto-archive.json: step 'record_processed': config.parameters.metadata.resolvedAt: "
        "'{{resolvedAt}}' resolves to undefined; did you mean variables.resolvedAt?",
        "conversation-auto-archive.json: step 'record_processed': config.parameters.metadata.staleDays: "
        "'{{staleDays}}' resolves to undefined; did you mean config.staleDays?",
    ],
    "google_drive/sync.json": [
        "sync.json: step 'noop': stepSlug: a step named 'noop' never runs: a nextSteps target 'noop' ends the run",
    ],
    "circuly/sync-customers.json": [],
    "gmail/email-sync.json": [],
    "outlook/email-sync.json": [],
}

ALL = sorted(str(p.relative_to(TALE_EXAMPLES)) for p in TALE_EXAMPLES.rglob("*.json")) if TALE_EXAMPLES.is_dir() else []


def test_all_fourteen_are_present():
    assert len(ALL) == 14


@pytest.mark.parametrize("name", ALL)
def test_verdict(name):
    report = validate_file(TALE_EXAMPLES / name)
    assert report.definition is not None, report.errors
    assert [str(i) for i in report.errors] == EXPECTED_ERRORS.get(name, [])
    warnings = [str(i) for i in report.warnings]
    if name in EXPECTED_WARNINGS:
        assert warnings == EXPECTED_WARNINGS[name]
    # Every warning is a stale bare name that config.variables or a set_variables step explains, the
    # step named noop, or (next to its `default` port) sync-subscriptions' missing `success` port.
    allowed = ("resolves to undefined; did you mean config.", "resolves to undefined; did you mean variables.",
               "a step named 'noop' never runs",
               "step 'update_cursor_and_fetch_next': nextSteps has no 'success' port")
    for line in warnings:
        assert any(fragment in line for fragment in allowed), line


@pytest.mark.parametrize("name", ALL)
def test_round_trip_through_to_tale(name):
    definition = validate_file(TALE_EXAMPLES / name).definition
    tale = definition.to_tale()
    again = parse_definition(tale, source=definition.source)
    assert again.to_tale() == tale
    assert [s.slug for s in again.steps] == [s.slug for s in definition.steps]
