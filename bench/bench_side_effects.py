"""Side-effecting steps: durable runs whose steps are all actions with an effect, against another revision.

    python bench/bench_side_effects.py [--runs 3000] [--steps 3] [--shards 1] [--processes 1]
                                       [--input-bytes 1024] [--repeat 3] [--against REV]

A side-effecting step (an action that is not pure, an LLM call) costs one transaction more than
a pure one: the claim that picks it up marks it ``started`` (``ShardStore.mark_step_started``)
before it runs, so a crash never runs it twice unknowingly; since ``wfctl retry``, that row
also keeps the run's state. This bench measures that path: ``--runs`` runs of a definition of
``--steps`` ``module:function`` actions (``bench/noop_action.py``, which returns at once), each
with an input of ``--input-bytes`` (part of the state every ``started`` row keeps), are started, then ``run_workers(drain=True)`` runs them all on a fresh SQLite data directory; the
figure is side-effecting steps per second over the drain.

``--against REV`` measures the same in the same run on git revision REV (``git archive`` into a
temporary directory, imported instead of this tree): each repetition runs this tree then REV,
in fresh processes, and the report gives each one's median and the ratio per repetition
(min-max). The bench itself uses only the public library, as it was before ``wfctl retry``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def measure(runs: int, steps: int, shards: int, processes: int, input_bytes: int) -> dict:
    """In a child process: start ``runs`` runs, drain them with ``processes`` workers, time the drain."""
    import time

    from wfctl.engine import Engine, run_workers
    from wfctl.store import DataDir

    with tempfile.TemporaryDirectory(prefix="wfctl-bench-") as tmp:
        data = Path(tmp) / "data"
        DataDir.init(data, shards=shards, route="execution")
        names = [f"effect{i}" for i in range(steps)]
        chain = ["start", *names, "done"]
        body = [{"stepSlug": "start", "name": "start", "stepType": "start", "nextSteps": {"success": chain[1]}}]
        body += [{"stepSlug": name, "name": name, "stepType": "action",
                  "config": {"type": "noop_action:noop", "parameters": {"n": "{{input.n}}"}},
                  "nextSteps": {"success": chain[i + 2]}} for i, name in enumerate(names)]
        body += [{"stepSlug": "done", "name": "done", "stepType": "output", "config": {"mapping": {"ok": True}},
                  "nextSteps": {}}]
        definition = Path(tmp) / "effects.json"
        definition.write_text(json.dumps({"id": "effects", "name": "effects", "steps": body}))
        with Engine(data, allow_modules=("noop_action",)) as engine:
            engine.apply([definition])
            for n in range(runs):
                engine.start("effects", {"n": n, "pad": "x" * input_bytes})
        began = time.perf_counter()
        code = run_workers(data, processes=processes, drain=True, allow_modules=("noop_action",))
        seconds = time.perf_counter() - began
        with Engine(data) as engine:
            completed = engine.count(["completed"])
    if code != 0 or completed != runs:
        raise SystemExit(f"the workers exited {code} with {completed} of {runs} runs completed")
    return {"seconds": seconds, "steps_per_s": runs * steps / seconds}


def _child(tree: Path, args: argparse.Namespace) -> dict:
    """One measurement in a fresh process importing wfctl from ``tree``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(HERE)])}
    code = (f"import sys, json; sys.path[:0] = [{str(HERE)!r}]; import bench_side_effects as b; "
            f"print(json.dumps(b.measure({args.runs}, {args.steps}, {args.shards}, {args.processes}, {args.input_bytes})))")
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tempfile.gettempdir(),
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"measurement in {tree} failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--steps", type=int, default=3, help="side-effecting steps per run")
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--processes", type=int, default=1, help="worker processes")
    parser.add_argument("--input-bytes", type=int, default=1024, help="padding in each run's input (and state)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--against", metavar="REV", help="a git revision measured side by side")
    args = parser.parse_args()
    trees = {"this tree": ROOT}
    with tempfile.TemporaryDirectory(prefix="wfctl-rev-") as tmp:
        if args.against:
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.against, "wfctl"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
            trees[args.against] = Path(tmp)
        results: dict[str, list[dict]] = {name: [] for name in trees}
        for rep in range(args.repeat):  # interleaved: a noisy minute hits every tree alike
            for name, tree in trees.items():
                results[name].append(_child(tree, args))
                print(f"repetition {rep + 1}, {name}: {results[name][-1]['steps_per_s']:,.0f} steps/s", flush=True)
    print(f"\n{args.runs} runs x {args.steps} side-effecting steps, {args.input_bytes}-byte inputs, {args.shards} shard(s), "
          f"{args.processes} worker process(es), {args.repeat} repetitions; {os.cpu_count()} CPUs")
    for name, rows in results.items():
        rates = [r["steps_per_s"] for r in rows]
        print(f"  {name:12} median {statistics.median(rates):>8,.0f} steps/s  (min {min(rates):,.0f}, "
              f"max {max(rates):,.0f})")
    if args.against:
        ratios = [a["steps_per_s"] / b["steps_per_s"] for a, b in zip(results["this tree"], results[args.against])]
        print(f"  this tree / {args.against}: median {statistics.median(ratios):.2f}x "
              f"(per repetition {min(ratios):.2f}-{max(ratios):.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
