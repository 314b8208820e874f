"""The ``wfctl`` command line: a thin Typer skin over the library.

Each command group lives in its own module; heavy modules are imported inside commands so
``wfctl --help`` starts fast. Every :class:`wfctl.errors.WfctlError` becomes one line on
stderr and its exit code; no traceback reaches the user.
"""

from __future__ import annotations

import sys

import typer

from ..errors import WfctlError
from . import defs, evaluate, run

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
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Run tale workflow definitions durably and stress-test workflow contention."""


app.add_typer(defs.app, name="defs")
app.command("eval")(evaluate.eval_command)
app.command("run")(run.run_command)


def main() -> None:
    """Entry point of the ``wfctl`` console script."""
    try:
        app()
    except WfctlError as exc:
        print(f"wfctl: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("wfctl: interrupted", file=sys.stderr)
        sys.exit(130)
