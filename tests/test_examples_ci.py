"""examples/ci/stress-smoke.yml: the GitHub Actions job that runs the stress smoke suite."""

from __future__ import annotations

from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parents[1] / "examples" / "ci" / "stress-smoke.yml"


def _load() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def _steps() -> list[dict]:
    jobs = _load()["jobs"]
    assert len(jobs) == 1
    (job,) = jobs.values()
    return job["steps"]


def test_workflow_has_triggers_and_python_311():
    data = _load()
    assert data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` key as True
    steps = _steps()
    assert any(str(s.get("uses", "")).startswith("actions/checkout@") for s in steps)
    setup = [s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python@")]
    assert setup and str(setup[0]["with"]["python-version"]) == "3.11"
    assert any(s.get("run", "").strip() == "pip install ." for s in steps)


def _stress_step() -> tuple[int, dict]:
    for index, step in enumerate(_steps()):
        command = " ".join(step.get("run", "").replace("\\\n", " ").split())
        if "wfctl stress run all --smoke" in command:
            return index, step
    raise AssertionError("no step runs 'wfctl stress run all --smoke'")


def test_runs_the_smoke_suite_with_json_and_html_reports():
    _, step = _stress_step()
    command = " ".join(step["run"].replace("\\\n", " ").split())
    assert "--json stress-report.json" in command
    assert "--html stress-report.html" in command
    assert "--threshold 'failed == 0'" in command
    assert "--no-live" in command


def test_uploads_both_reports_always_then_keeps_the_exit_code():
    index, step = _stress_step()
    steps = _steps()
    uploads = [(i, s) for i, s in enumerate(steps) if s.get("uses") == "actions/upload-artifact@v4"]
    assert uploads, "no actions/upload-artifact@v4 step"
    i, upload = uploads[0]
    assert i > index
    assert upload.get("if") == "always()"
    paths = upload["with"]["path"].split()
    assert "stress-report.json" in paths and "stress-report.html" in paths
    # The run step does not fail by itself; a later step (after the upload) exits with its code.
    assert "set +e" in step["run"] and "$GITHUB_OUTPUT" in step["run"]
    final = [s for s in steps[i + 1:] if f"steps.{step['id']}.outputs.code" in s.get("run", "")]
    assert final and final[-1].get("if") == "always()" and "exit" in final[-1]["run"]
