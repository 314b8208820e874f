"""tale's shipped example definitions run to their expected end with the stubs in examples/stubs/."""

from __future__ import annotations

import json

import pytest

from helpers import EXAMPLES, TALE_EXAMPLES

pytestmark = pytest.mark.skipif(not TALE_EXAMPLES.is_dir(), reason="../shared/tale-examples is not present")


def run_example(name, stubs, input, clock, make_interpreter, patch=None):
    from wfctl.actions import StubSet
    from wfctl.definitions import load_definition, parse_definition
    from wfctl.runner import run_to_end

    path = TALE_EXAMPLES / name
    if patch:
        text = path.read_text()
        for old, new in patch.items():
            text = text.replace(old, new)
        defn = parse_definition(json.loads(text), source=str(path), default_id=path.stem)
    else:
        defn = load_definition(path)
    interp = make_interpreter(stubs=StubSet.load(EXAMPLES / "stubs" / stubs))
    return run_to_end(defn, input, interp, execution_id="ex_tale", sleep=clock.sleep)


def test_document_rag_sync_as_shipped_fails_on_its_stale_template(clock, make_interpreter):
    result = run_example("general/document-rag-sync.json", "document-rag-sync.yaml", {}, clock, make_interpreter)
    assert result.state.status == "failed"
    assert result.path == ["start", "find_unprocessed_document"]
    assert result.state.error.startswith("step 'find_unprocessed_document': ")
    assert "backoffHours" in result.state.error
    # maxRetries 3: four attempts, backoff 2 s doubling with jitter
    assert [e.attempt for e in result.journal if e.slug == "find_unprocessed_document"] == [1, 2, 3, 4]
    assert len(clock.slept) == 3 and 1.0 <= clock.slept[0] < 3.0


def test_document_rag_sync_with_config_names_uploads_and_records(clock, make_interpreter):
    result = run_example("general/document-rag-sync.json", "document-rag-sync.yaml", {}, clock, make_interpreter,
                         patch={"{{backoffHours}}": "{{config.backoffHours}}"})
    assert result.state.status == "completed", result.state.error
    assert result.path == ["start", "find_unprocessed_document", "check_document_found", "upload_to_rag",
                           "record_processed"]
    steps = result.state.variables["steps"]
    assert steps["find_unprocessed_document"]["output"]["data"]["backoffHours"] == 72
    assert steps["upload_to_rag"]["output"]["data"] == {
        "success": True, "documentId": "rag_file_001", "fileName": "Quarterly report.pdf"}
    assert steps["record_processed"]["output"]["data"]["recordId"] == "doc_001"


@pytest.mark.parametrize("first_run, fetch_step", [(True, "fetch_latest_email"), (False, "fetch_new_emails")])
def test_gmail_email_sync_both_paths(clock, make_interpreter, first_run, fetch_step):
    result = run_example("gmail/email-sync.json", "gmail-email-sync.yaml", {"firstRun": first_run} if first_run else {},
                         clock, make_interpreter)
    assert result.state.status == "completed", result.state.error
    assert result.path == ["start", "query_latest_inbound_message", "check_has_cursor", fetch_step,
                           "check_has_emails", "set_thread_id", "fetch_thread_messages",
                           "insert_email_to_conversation"]
    assert result.state.variables["variables"] == {"gmailThreadId": "thread_42"}
    inserted = result.state.variables["steps"]["insert_email_to_conversation"]["output"]["data"]
    assert inserted == {"success": True, "conversationId": "conv_001", "messageCount": 2, "status": "open"}
    if not first_run:  # the cursor's deliveredAt (ms) became epoch seconds in the Gmail query
        query = result.state.variables["steps"]["fetch_new_emails"]["output"]["data"]["result"]["query"]
        assert query == "after:1763900000"


def test_circuly_sync_customers_pages_and_inserts(clock, make_interpreter):
    result = run_example("circuly/sync-customers.json", "circuly-sync-customers.yaml", {}, clock, make_interpreter)
    assert result.state.status == "completed", result.state.error
    per_customer = ["query_existing_customer", "check_customer_exists", "insert_new_customer", "loop_customers"]
    assert result.path == (
        ["start", "fetch_customers", "loop_customers"] + per_customer * 2
        + ["check_has_next_page", "prepare_next_page", "fetch_customers", "loop_customers"] + per_customer
        + ["check_has_next_page"]
    )
    created = result.state.variables["steps"]["insert_new_customer"]["output"]["data"]
    assert created == {"success": True, "customerId": "cust_circ_3", "name": "Caro Roy"}
    assert result.state.variables["variables"] == {"currentPage": 2}


def test_google_drive_sync_skips_unchanged_and_survives_a_failed_download(clock, make_interpreter):
    result = run_example("google_drive/sync.json", "google-drive-sync.yaml",
                         {"folderId": "F1", "mimeTypeFilter": ["application/pdf"]}, clock, make_interpreter)
    assert result.state.status == "completed", result.state.error
    assert result.path == [
        "start", "list_files", "loop_files",
        "lookup_existing", "check_unchanged", "loop_files",                       # file_a: unchanged
        "lookup_existing", "check_unchanged", "download_file", "create_document",  # file_b: new
        "check_doc_changed", "index_in_rag", "loop_files",
        "lookup_existing", "check_unchanged", "download_file", "loop_files",      # file_c: download fails
    ]
    loop_state = result.state.variables["loop"]["state"]
    [failure] = loop_state["errors"]
    assert failure["index"] == 2 and failure["step"] == "download_file" and "rate limit" in failure["error"]
    assert [e.attempt for e in result.journal if e.slug == "download_file"] == [1, 1, 2, 3]
    indexed = result.state.variables["steps"]["index_in_rag"]["output"]["data"]
    assert indexed == {"success": True, "documentId": "doc_file_b"}
