"""``wfctl retry``: put failed or canceled runs back to work (one by id, or in bulk by definition)."""

from __future__ import annotations

from typing import List, Optional

import typer

from .output import confirm, console, engine, print_json
from .runs import _statuses

RETRYABLE_STATUSES = ("failed", "canceled")


def retry_command(
    ctx: typer.Context,
    execution_id: Optional[str] = typer.Argument(None, help="The run to retry."),
    from_step: Optional[str] = typer.Option(
        None, "--from", help="Go on from this step (the last time the run reached it) instead of where it stopped; a completed run too."),
    definition: Optional[str] = typer.Option(None, "--definition", "-d", help="Retry the runs of this definition (bulk)."),
    status: Optional[List[str]] = typer.Option(None, "--status", "-s", help="With --definition: only these statuses (failed, the default; canceled)."),
    since: Optional[str] = typer.Option(None, "--since", help="With --definition: only runs that ended within this long (e.g. 1h, 2d)."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1, help="With --definition: at most this many runs (the newest)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation of a bulk retry."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Retry a failed or canceled run from where it stopped, or from --from STEP, with the state it had there.

    The journal is kept and new attempts are appended, numbered on; the run stays on the definition version it started on and goes back to its shard's queue, where a worker (`wfctl worker`) runs it. --from STEP must be a step of that version the run reached; the state before it is known where the run stopped and before side-effecting steps (others are refused). --definition (with --status, --since, --limit) retries many runs from where they stopped: it shows the count and asks first unless --yes. Exit codes: 0 retried, 2 refused (nothing changed).
    """
    from ..durations import parse_duration
    from ..errors import InputError

    if execution_id and definition:
        raise InputError("give an execution id or --definition, not both")
    eng = engine(ctx)
    if execution_id:
        if status or since or limit is not None:
            raise InputError("--status, --since and --limit go with --definition")
        result = eng.retry(execution_id, from_step)
        if json_out:
            print_json(result)
        else:
            console().print(f"{execution_id} retried from step '{result['step']}' (attempt {result['attempt']})",
                            markup=False)
        return
    if not definition:
        raise InputError("give an execution id to retry, or --definition")
    if from_step is not None:
        raise InputError("--from goes with an execution id (a bulk retry goes on from where each run stopped)")
    statuses = _statuses(status, RETRYABLE_STATUSES, ": only failed or canceled runs are retried") or ["failed"]
    seconds = None if since is None else parse_duration(since, "--since")
    ids = eng.retry_candidates(definition, statuses, seconds, limit)
    if ids:
        confirm(f"Retry {len(ids)} run(s) of '{definition}'?", yes)
    result = eng.retry_matching(ids)
    result["count"] = len(result["retried"])
    if json_out:
        print_json(result)
        return
    out = console()
    for skipped in result["skipped"]:
        out.print(f"skipped: {skipped['error']}", markup=False)
    out.print(f"retried {result['count']} run(s)")
