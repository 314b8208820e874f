"""The ``wfctl`` command line: a thin Typer skin over the library.

Each command group lives in its own module; heavy modules are imported inside commands so
``wfctl --help`` starts fast. Every :class:`wfctl.errors.WfctlError` becomes one line on
stderr and its exit code; no traceback reaches the user.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

import typer

from ..errors import WfctlError
from . import defs, evaluate, init, retry, run, runs, schedules, shards, stress, worker

app = typer.Typer(
    name="wfctl",
    help="Run tale workflow definitions durably and stress-test workflow contention.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"wfctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    data_dir: Optional[str] = typer.Option(
        None, "--data-dir", help="The data directory (default: $WFCTL_DATA_DIR, else ./.wfctl).", show_default=False),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Run tale workflow definitions durably and stress-test workflow contention."""
    ctx.obj = {"data_dir": data_dir}


app.command("init")(init.init_command)
app.command("start")(runs.start_command)
app.command("status")(runs.status_command)
app.command("list")(runs.list_command)
app.command("cancel")(runs.cancel_command)
app.command("cleanup")(runs.cleanup_command)
app.command("retry")(retry.retry_command)
app.command("worker")(worker.worker_command)
app.command("scheduler")(schedules.scheduler_command)
app.add_typer(schedules.app, name="schedules")
app.add_typer(defs.app, name="defs")
app.add_typer(shards.app, name="shards")
app.add_typer(stress.app, name="stress")
app.command("run")(run.run_command)
app.command("eval")(evaluate.eval_command)


def main() -> None:
    """Entry point of the ``wfctl`` console script."""
    import logging

    for stream in (sys.stdout, sys.stderr):  # a lone surrogate in stored data prints as \udXXXX (valid in JSON)
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    logging.basicConfig(format="wfctl: warning: %(message)s", level=logging.WARNING)
    for n, arg in enumerate(sys.argv[1:], 1):
        problem = "contains a NUL character" if "\0" in arg else None
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:  # bytes that are not UTF-8 reach Python as lone surrogates
            problem = "is not valid UTF-8"
        if problem:
            print(f"wfctl: error: argument {n} '{_one_line(arg[:40])}' {problem}", file=sys.stderr)
            sys.exit(2)
    try:
        code = app(standalone_mode=False)  # usage errors are raised here, to be printed on one line
    except typer.Abort:  # e.g. end of input at a confirmation prompt
        print("wfctl: aborted", file=sys.stderr)
        sys.exit(1)
    except WfctlError as exc:
        print(f"wfctl: error: {_one_line(str(exc))}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("wfctl: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # a bug in wfctl: still one line, the traceback on request
        if _is_click_error(exc, "NoArgsIsHelpError"):
            sys.exit(2)  # the help has been printed
        if _is_click_error(exc, "ClickException"):  # a usage error: unknown option, bad value, ...
            print(f"wfctl: error: {_usage_message(exc)}", file=sys.stderr)
            sys.exit(exc.exit_code)
        if os.environ.get("WFCTL_DEBUG"):
            raise
        print(f"wfctl: internal error: {type(exc).__name__}: {_one_line(str(exc))} (set WFCTL_DEBUG=1 for the "
              "traceback)", file=sys.stderr)
        sys.exit(70)
    sys.exit(code if isinstance(code, int) else 0)


def _one_line(text: str) -> str:
    """``text`` with line breaks, other control characters and lone surrogates escaped: a user's
    value quoted in an error message must not break it over lines."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _is_click_error(exc: BaseException, name: str) -> bool:
    """Whether ``exc`` is a Click ``name`` (by class name: Typer ships its own copy of Click)."""
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def _usage_message(exc) -> str:
    """A Click error as one line, with where to find the command's help."""
    message = _one_line(" ".join(exc.format_message().split()))
    ctx = getattr(exc, "ctx", None)
    return message if ctx is None else f"{message} (see '{ctx.command_path} --help')"
