"""``wfctl defs``: workflow definitions (validate today; apply/list/show/delete with the engine)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .output import ALLOW_MODULE_HELP, confirm, console, engine, print_json

app = typer.Typer(help="Validate and manage workflow definitions.", no_args_is_help=True)

@app.command("validate")
def validate_command(
    ctx: typer.Context,
    files: List[Path] = typer.Argument(..., help="Definition files (.json/.yaml/.yml) or directories to search."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    stubs: Optional[Path] = typer.Option(
        None, "--stubs", help="A stubs file: also warn about tale platform actions it does not cover."
    ),
    strict: bool = typer.Option(False, "--strict", help="Treat warnings as errors (exit 1 on any warning)."),
    allow_module: Optional[List[str]] = typer.Option(None, "--allow-module", help=ALLOW_MODULE_HELP),
) -> None:
    """Check definitions: schema, step types, ports, targets, reachability, loops, templates.

    Prints a table (or JSON with --json) and every error and warning on one line each, as `file: step 'slug': field: message`. A directory is searched for definition files (stubs and input files in it are skipped).

    Exit codes: 0 no file has errors, 1 some file has errors (or warnings with --strict).
    """
    from ..definitions import find_definition_files, validate_file
    from ..engine.factories import action_policy

    policy = action_policy(ctx.find_root().obj.get("data_dir"), allow_module)
    stubbed = None
    if stubs is not None:
        from ..actions import StubSet

        stubbed = StubSet.load(stubs).covered()
    reports = [validate_file(path, stubbed=stubbed, policy=policy) for path in find_definition_files(files)]
    failed = any(r.errors or (strict and r.warnings) for r in reports)
    if json_out:
        print_json([_report_json(r) for r in reports])
    else:
        _render(reports)
    raise typer.Exit(1 if failed else 0)


def _issue_json(issue) -> dict:
    return {"step": issue.step, "field": issue.field, "message": issue.message,
            "text": issue.format(str(issue.source) if issue.source else None)}


def _report_json(report) -> dict:
    return {
        "file": str(report.source),
        "definition_id": report.definition_id,
        "valid": not report.errors,
        "errors": [_issue_json(i) for i in report.errors],
        "warnings": [_issue_json(i) for i in report.warnings],
    }


def _render(reports) -> None:
    from rich.table import Table

    out = console()
    labels = _labels([r.source for r in reports])
    table = Table(title_justify="left")
    for column in ("file", "definition", "steps", "result", "errors", "warnings"):
        numeric = column in ("steps", "errors", "warnings")
        table.add_column(column, justify="right" if numeric else "left", overflow="fold", no_wrap=numeric)
    for r in reports:
        result = "[red]invalid[/red]" if r.errors else ("[yellow]ok (warnings)[/yellow]" if r.warnings else "[green]ok[/green]")
        steps = str(len(r.definition.steps)) if r.definition is not None else "-"
        table.add_row(labels[r.source], r.definition_id or "-", steps, result, str(len(r.errors)), str(len(r.warnings)))
    out.print(table)
    for r in reports:
        for issue in r.errors:
            out.print("[red]error[/red]   " + _escape(issue.format(labels[r.source])), soft_wrap=True)
        for issue in r.warnings:
            out.print("[yellow]warning[/yellow] " + _escape(issue.format(labels[r.source])), soft_wrap=True)
    invalid = sum(1 for r in reports if r.errors)
    out.print(f"{len(reports)} file(s), {invalid} invalid, {sum(len(r.warnings) for r in reports)} warning(s)")


def _labels(sources) -> dict:
    """Short, unambiguous names: paths relative to the folder all the files share."""
    import os

    paths = [os.path.abspath(str(s)) for s in sources]
    if len(set(paths)) < 2:
        return {s: os.path.basename(str(s)) for s in sources}
    base = os.path.commonpath(paths)
    return {s: os.path.relpath(p, base) for s, p in zip(sources, paths)}


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@app.command("apply")
def apply_command(
    ctx: typer.Context,
    files: List[Path] = typer.Argument(..., help="Definition files or directories to register."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    allow_module: Optional[List[str]] = typer.Option(None, "--allow-module", help=ALLOW_MODULE_HELP),
) -> None:
    """Validate and register definitions in the data directory's catalog (all or nothing).

    Each file becomes the current version of its id (named by its content hash); runs already started keep the version they started on. The output says when a file replaces another version, and names the file that version came from when it differs.
    """
    applied = engine(ctx, allow_modules=allow_module, create=True).apply(files)
    if json_out:
        print_json([{"id": a.id, "changed": a.changed, "version": a.version, "previous": a.previous,
                     "previous_source": a.previous_source, "source": a.source} for a in applied])
        return
    out = console()
    for a in applied:
        out.print(_applied_line(a), markup=False)


def _applied_line(a) -> str:
    if not a.changed:
        return f"{a.id}: unchanged (version {a.version})"
    if a.previous is None:
        return f"{a.id}: applied (version {a.version})"
    line = f"{a.id}: changed from version {a.previous} to {a.version}"
    if a.previous_source and a.previous_source != a.source:
        line += f" (the replaced version came from another file: {a.previous_source})"
    return line


@app.command("list")
def list_command(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="Print the definitions as JSON."),
) -> None:
    """List the registered definitions."""
    rows = engine(ctx).definitions()
    if json_out:
        print_json(rows)
        return
    from rich.table import Table

    table = Table(title_justify="left")
    for column in ("id", "name", "version", "steps", "updated", "current"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["id"], row.get("name") or "", row.get("version") or "", str(row.get("steps", "")),
                      str(row.get("updated_at") or ""), row.get("hash") or "")
    console().print(table)


@app.command("history")
def history_command(
    ctx: typer.Context,
    definition_id: str = typer.Argument(..., help="A registered definition id."),
    json_out: bool = typer.Option(False, "--json", help="Print the versions as JSON."),
) -> None:
    """List the stored versions of a definition, most recently applied first.

    A version is named by the hash of the definition's content; `*` marks the current one, which new runs use. Every run stays on the version it started on; `runs` counts them.
    """
    rows = engine(ctx).definition_history(definition_id)
    if json_out:
        print_json(rows)
        return
    from rich.table import Table

    table = Table(title_justify="left")
    for column in ("", "version", "applied", "name", "def. version", "steps", "runs", "source"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row("*" if row["current"] else "", row["version"], row["applied_at"] or "", row["name"] or "",
                      row["definition_version"] or "", str(row["steps"]), str(row["runs"]), row["source"] or "")
    console().print(table)


@app.command("show")
def show_command(
    ctx: typer.Context,
    definition_id: str = typer.Argument(..., help="A registered definition id."),
    version: Optional[str] = typer.Option(None, "--version", help="Show this version (see `defs history`) instead of the current one."),
) -> None:
    """Print a registered definition (its current version, or --version) as tale JSON."""
    print_json(engine(ctx).definition(definition_id, version=version).to_tale())


@app.command("delete")
def delete_command(
    ctx: typer.Context,
    definition_id: str = typer.Argument(..., help="A registered definition id."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Delete a definition: cancel its unfinished runs and delete all its runs (in batches of 100)."""
    eng = engine(ctx)
    eng.definition(definition_id)  # unknown id: a clear error before asking
    count = eng.count(None, definition_id)
    confirm(f"Delete definition '{definition_id}' and its {count} run(s)?", yes)
    canceled, deleted = eng.delete_definition(definition_id)
    if json_out:
        print_json({"id": definition_id, "canceled": canceled, "deleted": deleted})
    else:
        console().print(f"deleted '{definition_id}': {canceled} run(s) canceled, {deleted} deleted", markup=False)
