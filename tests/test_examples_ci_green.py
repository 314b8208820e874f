"""examples/ci/stress-smoke.yml is green on unchanged code: its stress step run twice on the same code
(exactly as the workflow runs it, through bash), then its baseline comparison step on the two reports,
exits 0 and never prints REGRESSION. Real stress processes: two smoke suites (a few minutes when loaded)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from helpers import ROOT, wfctl_env

WORKFLOW = ROOT / "examples" / "ci" / "stress-smoke.yml"


def _steps() -> list[dict]:
    (job,) = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"].values()
    return job["steps"]


def _step(words: str) -> dict:
    for step in _steps():
        if words in " ".join(step.get("run", "").replace("\\\n", " ").split()):
            return step
    raise AssertionError(f"no step of {WORKFLOW.name} runs {words!r}")


def _bash(script: str, cwd: Path, output: Path) -> subprocess.CompletedProcess:
    """Run a workflow step's script as GitHub Actions does (bash -e), the installed wfctl on the PATH."""
    env = wfctl_env(GITHUB_OUTPUT=str(output), TMPDIR=str(cwd))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=1200)


def _breaches(folder: Path) -> str:
    """The thresholds that failed in a run's report, for the failure message."""
    path = folder / "stress-report.json"
    if not path.is_file():
        return "no stress-report.json\n"
    result = json.loads(path.read_text(encoding="utf-8"))
    return "".join(f"{s['name']} / {t['variant']}: {t['expression']} (value {t['value']})\n"
                   for s in result["scenarios"] for t in s["thresholds"] if not t["passed"])


def test_smoke_suite_twice_then_the_comparison_step_is_green(tmp_path):
    assert Path(sys.executable).with_name("wfctl").is_file(), "the wfctl console script is not installed"
    stress = _step("wfctl stress run all --smoke")
    compare = _step("wfctl stress compare")
    runs = []
    for name in ("baseline-run", "current-run"):
        folder = tmp_path / name
        folder.mkdir()
        proc = _bash(stress["run"], folder, folder / "github-output")
        code = (folder / "github-output").read_text().strip()
        assert proc.returncode == 0 and code == "code=0", _breaches(folder) + proc.stdout[-2000:] + proc.stderr[-3000:]
        assert (folder / "stress-report.json").is_file() and (folder / "stress-report.html").is_file()
        runs.append(folder)
    (runs[1] / "baseline").mkdir()
    (runs[1] / "baseline" / "stress-report.json").write_bytes((runs[0] / "stress-report.json").read_bytes())
    proc = _bash(compare["run"], runs[1], runs[1] / "github-output")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "REGRESSION" not in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith("PASS")
