"""The README's and docs' examples are true on a clean clone.

Every ```console block of README.md and docs/*.md with a ``$ wfctl ...`` command is run, in
document order, as one shell session per document, in a copy of the checkout's files (no
``../shared`` beside it) with a fresh data directory and ``/tmp/`` paths moved into the test's
folder. Each command must exit as documented (0; non-zero when the documented output shows a
``wfctl: error:`` line; the ``exit N`` it prints), and documented ``--json`` output must name
exactly the fields the command prints. No example may use ``../shared`` or a fixed execution id.
docs/postgresql.md's examples run on the test server (``$WFCTL_TEST_PG_DSN``, 127.0.0.1:5432) in
a database of their own, named in place of the documented ``workflows`` and dropped after.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import EXAMPLES, ROOT, wfctl
from pg import pg_dsn

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXECUTION_ID = re.compile(r"\b[0-9a-f]{2,}-[0-9a-f]{32}\b")
RUNS_WFCTL = re.compile(r"^(\w+=\$\()?wfctl\b")
MARK = "__wfctl_docs_rc__"


@dataclass
class Command:
    text: str
    output: list[str] = field(default_factory=list)


def fenced_blocks(text: str, language: str | None = None) -> list[list[str]]:
    """The lines of each fenced code block (of ``language``, or every one)."""
    blocks, current = [], None
    for line in text.splitlines():
        fence = re.match(r"\s*```(\S*)", line)
        if fence and current is None:
            current = [] if language is None or fence.group(1) == language else False
        elif fence:
            if current is not False:
                blocks.append(current)
            current = None
        elif isinstance(current, list):
            current.append(line)
    return blocks


def commands(block: list[str]) -> list[Command]:
    """The ``$ `` commands of a console block (with their continuation and here-document lines)
    and the output lines documented under each."""
    out: list[Command] = []
    heredoc = None
    continued = False
    for line in block:
        if heredoc is not None or continued:
            out[-1].text += "\n" + line
            if heredoc is not None and line.strip() == heredoc:
                heredoc = None
            continued = heredoc is None and line.endswith("\\")
            continue
        if line.startswith("$ "):
            out.append(Command(line[2:]))
            match = re.search(r"<<-?\s*'?\"?(\w+)", line)
            heredoc = match.group(1) if match else None
            continued = heredoc is None and line.endswith("\\")
        elif out:
            out[-1].output.append(line)
    return out


def session(doc: Path) -> list[Command]:
    """The commands of ``doc``'s console blocks that run wfctl, in document order."""
    blocks = [commands(b) for b in fenced_blocks(doc.read_text(encoding="utf-8"), "console")]
    return [c for b in blocks if any(RUNS_WFCTL.match(c.text) for c in b) for c in b]


RUNNABLE = [doc for doc in DOCS if session(doc)]


def test_the_session_parser_reads_continuations_heredocs_and_outputs():
    block = ["$ wfctl eval \"1 +\" \\", "    --vars '{}'", "wfctl: error: bad", "$ cat > /tmp/x <<'EOF'",
             "$ not a command", "EOF", "$ wfctl list"]
    parsed = commands(block)
    assert [c.text for c in parsed] == ["wfctl eval \"1 +\" \\\n    --vars '{}'",
                                        "cat > /tmp/x <<'EOF'\n$ not a command\nEOF", "wfctl list"]
    assert parsed[0].output == ["wfctl: error: bad"] and parsed[2].output == []
    assert {"README.md", "engine.md", "schedules.md", "definitions.md", "expressions.md"} <= {d.name for d in RUNNABLE}


@pytest.mark.parametrize("doc", DOCS + [ROOT / "examples" / "ci" / "README.md"], ids=lambda d: d.name)
def test_no_example_needs_shared_files_or_a_fixed_execution_id(doc):
    for block in fenced_blocks(doc.read_text(encoding="utf-8")):
        text = "\n".join(block)
        assert "../shared" not in text and "/work/shared" not in text, (doc.name, text)
    for command in (c for block in fenced_blocks(doc.read_text(encoding="utf-8"), "console") for c in commands(block)):
        assert not EXECUTION_ID.search(command.text), (doc.name, command.text)


def clean_copy(dest: Path) -> Path:
    """The checkout's files (tracked or new, not ignored: no .venv, data directories or caches) under ``dest``."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True)
    if listed.returncode == 0:
        for name in filter(None, listed.stdout.decode().split("\0")):
            if (ROOT / name).is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, dest / name)
    else:  # not a git checkout (an unpacked sdist)
        shutil.copytree(ROOT, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            ".git", ".venv*", ".wfctl", "__pycache__", "*.egg-info", ".pytest_cache", "build", "dist"))
    return dest


@contextmanager
def renames(doc: Path) -> Iterator[dict[str, str]]:
    """What ``doc``'s commands name differently when run here (pattern -> replacement)."""
    if doc.name != "postgresql.md":
        yield {}
        return
    import psycopg
    from psycopg import sql

    from wfctl.store.postgresql.connection import server_name

    dsn = pg_dsn()
    if not server_name(dsn).startswith("127.0.0.1:5432/"):
        pytest.skip(f"postgresql.md's examples use the server at 127.0.0.1:5432, not {server_name(dsn)}")
    name = f"wft_docs_{uuid.uuid4().hex[:10]}"
    try:
        yield {r"\bworkflows\b": name}
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def run_session(doc: Path, tmp: Path, rename: dict[str, str] | None = None) -> list[tuple[Command, int, str]]:
    """Run ``doc``'s session in a clean copy; each command with its exit code and output."""
    repo = clean_copy(tmp / "wfctl")
    assert not (repo.parent / "shared").exists() and (repo / "examples" / "hello.json").is_file()
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "wfctl"  # `wfctl` runs this checkout's package with this interpreter
    shim.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}${{PYTHONPATH:+:$PYTHONPATH}}" exec "{sys.executable}" -m wfctl "$@"\n')
    shim.chmod(0o755)
    scratch = tmp / "scratch"
    scratch.mkdir()
    cmds = session(doc)
    script = ["exec 2>&1", "trap 'kill $(jobs -p) 2>/dev/null' EXIT", f"cd {repo}"]
    for c in cmds:
        text = re.sub(r"/tmp\b", str(scratch), c.text)
        for pattern, replacement in (rename or {}).items():
            text = re.sub(pattern, replacement, text)
        script += [text, f'printf "\\n{MARK} %s\\n" "$?"']
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WFCTL_") and k not in ("PYTHONPATH", "COLUMNS")}
    env.update(PATH=f"{bin_dir}:{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
               PYTHONPATH=str(ROOT), COLUMNS="100", HOME=str(tmp))
    proc = subprocess.Popen(["bash", "-c", "\n".join(script)], cwd=repo, env=env, stdout=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        stdout, _ = proc.communicate(timeout=900)
    except subprocess.TimeoutExpired:  # a command that never ends: stop it and everything it started
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, _ = proc.communicate()
    parts = re.split(rf"\n{MARK} (\d+)\n", stdout)
    results = [(c, int(parts[2 * i + 1]), parts[2 * i]) for i, c in enumerate(cmds) if 2 * i + 1 < len(parts)]
    assert len(results) == len(cmds), f"the session stopped after {len(results)} of {len(cmds)} commands:\n{stdout[-3000:]}"
    return results


def documented_keys(output: list[str]) -> set[str] | None:
    """The top-level keys of documented JSON (of its first item for a list), None when it is not JSON."""
    if not output or output[0] not in ("{", "["):
        return None
    indent = "  " if output[0] == "{" else "    "
    return {m.group(1) for line in output if (m := re.match(rf'^{indent}"(\w+)":', line))}


@pytest.mark.parametrize("doc", RUNNABLE, ids=lambda d: d.name)
def test_documented_commands_run_on_a_clean_clone_as_documented(doc, tmp_path):
    problems = []
    with renames(doc) as rename:
        results = run_session(doc, tmp_path, rename)
    for command, rc, output in results:
        where = f"{doc.name}: $ {command.text}\n--- output (exit {rc}):\n{output[-1500:]}"
        documented = "\n".join(command.output)
        exits = re.findall(r"^exit (\d+)$", documented, re.M)
        if "Traceback" in output or "internal error" in output:
            problems.append(f"crashed: {where}")
        elif exits:
            if re.findall(r"^exit (\d+)$", output, re.M) != exits:
                problems.append(f"expected exit {exits}: {where}")
        elif re.search(r"^wfctl: error: ", documented, re.M):
            if rc == 0 or "wfctl: error: " not in output:
                problems.append(f"expected an error: {where}")
        elif rc != 0:
            problems.append(f"expected exit 0: {where}")
        keys = documented_keys(command.output)
        plain = command.text.split("#")[0].strip()
        if keys and plain.endswith("--json") and "|" not in plain and ">" not in plain:
            printed = json.loads(output)
            actual = set(printed[0] if isinstance(printed, list) else printed)
            if keys != actual:
                problems.append(f"documented JSON fields {sorted(keys ^ actual)} differ: {where}")
    assert not problems, "\n\n".join(problems)


def test_the_platform_actions_example_runs_with_its_stubs_and_fails_without(tmp_path):
    stubs = EXAMPLES / "stubs" / "mail-to-conversation.yaml"
    done = wfctl(None, "run", EXAMPLES / "mail-to-conversation.json", "--stubs", stubs, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == {"conversationId": "conv_001", "messages": 2}
    none = wfctl(None, "run", EXAMPLES / "mail-to-conversation.json", "--stubs", stubs, "--input", '{"query": "none"}',
                 "--json")
    assert json.loads(none.stdout)["output"] == {"conversationId": None, "messages": 0}
    failed = wfctl(None, "run", EXAMPLES / "mail-to-conversation.json", "--json")
    assert failed.returncode == 1 and "'integration' is provided by the tale platform" in failed.stdout
    durable = wfctl(tmp_path / "data", "start", EXAMPLES / "mail-to-conversation.json", "--wait", "--stubs", stubs,
                    "--json")
    assert durable.returncode == 0 and json.loads(durable.stdout)["output"]["messages"] == 2


WALL_TIME = re.compile(r"\b\d+(?:[-–]\d+(?:\.\d+)?)? ?(?:minutes?|min)\b|\babout \d+(?:[-–]\d+)? ?s\b|\b\d+-\d+ s\b"
                       r"|\ba minute\b")


@pytest.mark.parametrize("doc", DOCS + [ROOT / "examples" / "ci" / "README.md"], ids=lambda d: d.name)
def test_wall_times_say_on_which_machine_and_load(doc):
    """A paragraph (or table row, or code block) that says how long something takes names the
    machine (its cores) or its load: the same command runs 2.5 times slower on a busy machine."""
    for para in re.split(r"\n\s*\n|\n(?=\|)", doc.read_text(encoding="utf-8")):
        para = re.sub(r"(?<!`)`[^`\n]+`(?!`)", "", para)  # inline code: options, output, examples
        times = [m.group(0) for m in WALL_TIME.finditer(para) if "timeout" not in para[max(0, m.start() - 40):m.start()]]
        if times and doc.name != "benchmarks.md":  # benchmarks.md names its machine once, at the top
            assert re.search(r"\bcores?\b|\bload", para), (doc.name, times, para[:300])
