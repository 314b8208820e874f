"""A side-effecting action that returns at once (``noop_action:noop``), for bench/bench_side_effects.py."""


def noop(params: dict, ctx) -> dict:
    """Return the parameters: the step's cost is the engine's, not the action's."""
    return {"n": params.get("n")}
