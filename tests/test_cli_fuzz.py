"""Fuzz every option and argument of every command: the only outcomes are success, a documented
non-zero exit code, or one line on stderr with exit 2 — never a traceback or an internal error.

The commands and their parameters are read from the Click command tree Typer builds
(``typer.main.get_command(app)``), so a new command or option is fuzzed without touching this
file. Each example runs ``wfctl.cli.main`` in this process (``sys.argv`` patched, ``SystemExit``
caught) against a small data directory prepared once (two definitions, a few runs). Commands
that would run for long are bounded, not skipped: ``worker`` and ``stress run`` run with their
process-starting call replaced (their option checks, which come first, are what is fuzzed), and
``start --wait`` only ever follows runs that end by themselves. ``scheduler`` (runs until
stopped) is left out. ``WFCTL_FUZZ_EXAMPLES`` sets the examples per command (default 20).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import sys

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import EXAMPLES

from wfctl.cli import app, main

EXAMPLES_PER_COMMAND = int(os.environ.get("WFCTL_FUZZ_EXAMPLES", "20"))

#: Commands not fuzzed, and why.
EXCLUDED = {
    "scheduler": "runs until stopped (its --metrics-port is tested in tests/test_metrics.py)",
}

#: Documented exit codes besides 0 and 2, per command (see each command's --help).
EXTRA_CODES = {
    "start": {1, 3, 4},          # with --wait: failed, canceled, timed out
    "run": {1},                  # the run failed
    "defs validate": {1},        # a file has errors
    "stress compare": {98},      # a regression beyond --fail-on-regression
    "stress run": {98, 99},
}

#: Non-finite numbers in JSON input: refused on input, never printed bare.
NON_FINITE_JSON = ['{"a": NaN}', '{"a": 1e999}', "Infinity", "[-Infinity]", '{"a": -1e400}']


def _commands():
    """(command path, Click command) for every leaf command of the app."""
    def walk(cmd, path):
        if hasattr(cmd, "commands"):
            for name, sub in sorted(cmd.commands.items()):
                yield from walk(sub, (*path, name))
        else:
            yield " ".join(path), cmd

    return [(path, cmd) for path, cmd in walk(typer.main.get_command(app), ()) if path not in EXCLUDED]


COMMANDS = _commands()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A data directory (2 shards, hello + scheduled applied, three runs) and sample files
    (each command's test applies the definitions again and starts three runs of its own)."""
    from wfctl.engine import Engine
    from wfctl.store import DataDir

    tmp = tmp_path_factory.mktemp("fuzz")
    data = tmp / "data"
    DataDir.init(data, shards=2)
    with Engine(data) as eng:
        eng.apply([EXAMPLES / "hello.json", EXAMPLES / "scheduled.json"])
        ids = [eng.start("hello", {"name": str(n)}).execution_id for n in range(3)]
        eng.start("hello", {"name": "\ud800"})  # a lone surrogate (from a JSON escape) in stored data
    regular = tmp / "regular.txt"
    regular.write_text("not json\n")
    (tmp / "latin1.json").write_bytes(b'{"name": "\xff"}')
    (tmp / "empty.yaml").write_text("")
    (tmp / "dir.json").mkdir()
    good_json = tmp / "input.json"
    good_json.write_text('{"name": "file"}')
    return {"data": data, "ids": ids, "regular": regular, "good_json": good_json, "tmp": tmp}


def _data_dirs(ws) -> st.SearchStrategy[str]:
    """The root --data-dir: the prepared directory 3 times in 4, else one that cannot be used
    (a regular file, below one, under /proc/self, missing, or inside the data directory)."""
    odd = [ws["regular"], ws["regular"] / "below", "/proc/self/wfctl", ws["tmp"] / "missing" / "deeper",
           ws["data"] / "shard-000.db", ws["tmp"] / "dir.json", ""]
    return st.integers(0, 3).flatmap(
        lambda n: st.just(str(ws["data"])) if n else st.sampled_from([str(p) for p in odd]))


def _deep(n: int) -> str:
    return '{"a":' * n + "1" + "}" * n


def _strings(ws) -> st.SearchStrategy[str]:
    """Odd and ordinary string values: empty, control characters, very long, paths, JSON-ish,
    ids of this data directory, times and durations."""
    tmp = ws["tmp"]
    pool = [
        "", " ", "-", "--", ".", "..", "\n", "a\nb", "x" * 10_000, "é", "\ud800",
        "0", "-1", "1e20", "nan", "inf", "-inf", "1e400", "99999999999999999999999",
        "{}", "[]", "null", '{"a": 1}', *NON_FINITE_JSON,  "[1, 2]", '{"name": "Ada"}', "{", '"x"', _deep(50), _deep(1000),
        "@", "@/nonexistent/x.json", str(tmp / "latin1.json"), f"@{tmp / 'latin1.json'}", str(tmp / "empty.yaml"),
        str(tmp / "dir.json"), f"@{tmp / 'dir.json'}", "/dev/null", "@/dev/null", f"@{ws['regular']}", f"@{ws['good_json']}",
        str(ws["regular"]), str(tmp / "nonexistent" / "x"), str(tmp), str(ws["good_json"]),
        str(EXAMPLES / "hello.json"), str(EXAMPLES / "scheduled.json"), str(EXAMPLES / "retries.yaml"),
        "hello", "scheduled", "nosuch", *ws["ids"], "00-" + "0" * 32, "zz-zz",
        "pending", "running", "completed", "failed", "canceled", "definition", "execution", "full", "normal",
        "7d", "1h30m", "0s", "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z", "0001-01-01", "9999-12-31",
        "concurrent-starts", "all", "start_latency.p99 < 50ms", "1/0", "a + 1", "{{input.x}}",
    ]
    return st.one_of(st.sampled_from(pool), st.text(max_size=12))


def _likely(ws) -> dict[str, list[str]]:
    """Plausible values per parameter name, so that many examples get past the first check."""
    hello, scheduled = str(EXAMPLES / "hello.json"), str(EXAMPLES / "scheduled.json")
    return {
        "execution_id": ws["ids"], "execution_ids": ws["ids"], "definition": ["hello", "scheduled", hello],
        "definition_id": ["hello", "scheduled"], "file": [hello, scheduled], "files": [hello, scheduled],
        "expression": ["1 + 1", "a.b", "x|upper"], "vars": ['{"a": {"b": 1}}', '{"x": "y"}'],
        "input": ['{"name": "Ada"}', "{}"], "input_file": [str(ws["good_json"])],
        "start": ["2026-01-01T00:00:00Z"], "end": ["2026-01-01T00:03:00Z", "2026-01-01T00:00:00Z"],
        "older_than": ["7d", "0s", "1h30m"], "status": ["pending", "completed", "failed", "canceled", "running"],
        "route": ["definition", "execution"], "durability": ["normal", "full"], "duration": ["5s", "1m"],
        "target": ["concurrent-starts", "sustained-load"], "thresholds": ["start_latency.p99 < 50ms"],
        "key": ["hello", "some-key"], "shards": ["0", "1", "0,1", "2"], "timeout": ["30", "0.01"],
    }


def _value(param, ws) -> st.SearchStrategy[str]:
    likely = _likely(ws).get(param.name)
    odd = _odd_value(param, ws)
    if likely is None:
        return odd
    return st.integers(0, 3).flatmap(lambda n: odd if n == 0 else st.sampled_from(likely))  # 3 in 4 plausible


def _odd_value(param, ws) -> st.SearchStrategy[str]:
    kind = type(param.type).__name__
    if kind in ("IntParamType", "IntRange"):
        return st.one_of(st.integers(-3, 12).map(str),
                         st.sampled_from(["0", "-1", "2147483648", "9223372036854775808", "1" + "0" * 20,
                                          "1e20", "nan", "", "x", "1.5"]))
    if kind in ("FloatParamType", "FloatRange"):
        return st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                         st.sampled_from(["nan", "inf", "-inf", "1e20", "1e308", "1e400", "-1", "0", "0.05",
                                          "", "x", "-0.0"]))
    return _strings(ws)


@st.composite
def _argv(draw, command, ws):
    """An argument list for ``command``: each option maybe given (required ones always), each
    argument a value or (for variadic ones) a few; arguments after ``--``."""
    options: list[str] = []
    arguments: list[str] = []
    for param in command.params:
        if param.param_type_name == "argument":
            count = draw(st.integers(0, 2)) if param.nargs == -1 else 1
            arguments += [draw(_value(param, ws)) for _ in range(count)]
            continue
        if not param.required and not draw(st.booleans()):
            continue
        if getattr(param, "is_flag", False):
            opts = param.opts + list(getattr(param, "secondary_opts", []))
            options.append(draw(st.sampled_from(opts)))
            continue
        for _ in range(draw(st.integers(1, 2)) if param.multiple else 1):
            options += [param.opts[0], draw(_value(param, ws))]
    return options + (["--", *arguments] if arguments else [])


def _invoke(argv: list[str], monkeypatch) -> tuple[int, str, str]:
    """Run ``wfctl ARGV`` in this process; returns (exit code, stdout, stderr)."""
    # strict UTF-8 streams, like a real stdout and stderr: a lone surrogate cannot pass unnoticed
    out, err = (io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="") for _ in range(2))
    handler = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(sys, "argv", ["wfctl", *argv])
    handlers = logging.root.handlers[:]
    logging.root.handlers.clear()  # main() sets up logging on this invocation's stderr
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        signal.signal(signal.SIGTERM, handler)
        logging.root.handlers[:] = handlers
    out.flush()
    err.flush()
    return code, out.buffer.getvalue().decode("utf-8"), err.buffer.getvalue().decode("utf-8")


def _no_constant(name: str):
    raise AssertionError(f"--json printed {name}, which strict JSON parsers reject")


@pytest.fixture
def no_processes(monkeypatch):
    """Replace what would start worker or stress processes: their option checks run before it."""
    import wfctl.engine.processes
    import wfctl.stress.harness

    def stress_stub(*args, **kwargs):
        raise typer.Exit(0)

    monkeypatch.setattr(wfctl.engine.processes, "run_workers", lambda *a, **k: 0)
    monkeypatch.setattr(wfctl.stress.harness, "run_stress", stress_stub)


@pytest.mark.parametrize("path,command", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_fuzz_command(path, command, workspace, no_processes, monkeypatch):
    allowed = {0, 2} | EXTRA_CODES.get(path, set())
    json_flag = next((p.opts[0] for p in command.params if p.name == "json_out"), None)
    monkeypatch.setenv("WFCTL_DATA_DIR", str(workspace["data"]))
    monkeypatch.chdir(workspace["tmp"])  # relative paths ('..') stay in this test's directories
    from wfctl.engine import Engine

    with Engine(workspace["data"]) as eng:  # an earlier command's examples may have deleted them
        eng.apply([EXAMPLES / "hello.json", EXAMPLES / "scheduled.json"])
        workspace["ids"][:] = [eng.start("hello", {"name": str(n)}).execution_id for n in range(3)]
    monkeypatch.delenv("WFCTL_DEBUG", raising=False)

    @settings(max_examples=EXAMPLES_PER_COMMAND, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                     HealthCheck.data_too_large])
    @given(args=_argv(command, workspace), data_dir=_data_dirs(workspace))
    def check(args, data_dir):
        argv = ["--data-dir", data_dir, *path.split(), *args]
        code, out, err = _invoke(argv, monkeypatch)
        shown = f"wfctl {json.dumps(argv)[:400]} -> exit {code}\nstderr: {err[:600]!r}"
        assert code in allowed, shown
        assert "Traceback" not in out + err and "internal error" not in err, shown
        if code != 0:
            assert len(err.strip().splitlines()) <= 1, shown
        elif json_flag and json_flag in args:  # --json output is strict JSON
            json.loads(out, parse_constant=_no_constant)

    check()
