"""Stress scenarios: TOML files that say what to run, how hard, and what must hold.

The six packaged scenarios live in the top-level ``scenarios/`` folder of the source tree
and ship as the data package ``wfctl_scenarios``, so they work after ``pip install .``.
A bare name (``concurrent-starts``) loads a packaged scenario; a path loads a user's copy.
Command-line flags override the file (:func:`apply_overrides`); ``--smoke`` applies the
file's ``[smoke]`` table first (:meth:`Scenario.apply_smoke`).

File format (every table rejects unknown keys; durations are strings such as ``"30s"``,
``"2m"``, ``"1h30m"`` or plain seconds)::

    stuck_after = "5m"            # top-level: the harness waits this long after the last start; a run
                                  # still unfinished then (at least this long after its start) is stuck
    repeat = 1                    # top-level: run each variant this many times (median and spread)

    [scenario]
    name = "concurrent-starts"    # the name `wfctl stress list` shows
    description = "..."           # what the scenario does
    shows = "..."                 # what it measures / demonstrates

    [engine]
    shards = 4                    # 1..1000
    route = "definition"          # "definition" | "execution"
    durability = "normal"         # "normal" | "full"
    workers = 2                   # worker processes
    schedulers = 0                # scheduler processes (>= 1 for model "scheduled")
    backend = "sqlite"            # "sqlite" | "postgresql" (default: sqlite; --backend wins)
    dsn = ["host=... dbname=..."] # postgresql: the servers, shards placed round-robin over them
                                  # (default: $WFCTL_DSN; --dsn wins)
    isolation = "serializable"    # postgresql: "read committed" (default) | "serializable"
    hot_rows = false              # every start and completion also updates one shared row per shard

    [workload]
    model = "closed"              # "closed" | "open" | "scheduled"
    clients = 50                  # closed: virtual users ... (open: client processes, default 2)
    total = 50                    # ... sharing this many starts
    rate = 2.5                    # open: starts per second after the stages
    duration = "60s"              # open: length of the arrival schedule (default: sum of stages)
    max_in_flight = 500           # open: arrivals beyond this many unfinished runs are dropped
    slots = 2                     # scheduled: due instants to wait for
    late_after = "1s"             # a start committed later than this after its planned instant
                                  # (closed: the call; open: the arrival; scheduled: the slot) is late
    [[workload.stages]]           # open: ramp linearly to `target` starts/s over `duration`
    duration = "20s"
    target = 2.5

    [[definitions]]               # one or more; exactly one of path / builtin / inline
    path = "definitions/greet.json"   # relative to the scenario file (then to the packaged scenarios)
    # builtin = "greet"               # a packaged definition: scenarios/definitions/<builtin>.json
    # inline = { id = "...", steps = [...] }
    copies = 1                    # register N copies, with ids <id>-1 .. <id>-N
    weight = 1                    # share of the starts

    [input]
    generator = "sequence"        # "fixed" | "sized" | "sequence" | "loops"
    field = "n"                   # sequence: the counter's key; sized: the payload's key
    value = {}                    # fixed: the input of every start
    size_bytes = 500_000          # sized: payload size
    oversize_every = 0            # sized: every k-th input exceeds the input limit (0 = never)
    iterations = 50               # loops: iterations of the loop and each nested loop
    rows = 2                      # loops: outer iterations of the nested loop
    seed = 1                      # optional: the sized payloads' random text and the order in which
                                  # starts pick definitions (default 0)

    [comparison]                  # optional: run the workload once per variant
    shards = [1, 4]
    routes = ["definition", "execution"]
    hot_definition = true         # also run it all on one definition
    hot_rows = [false, true]      # also with the shared row per shard (default: the engine's hot_rows)
    isolation = ["serializable"]  # postgresql: isolation levels to compare (default: the engine's)
    servers = [1, 2]              # postgresql: servers the shards spread over (> 1: needs that many DSNs)
    [comparison.postgresql]       # optional: replaces the dimensions above on PostgreSQL

    [thresholds]
    defaults = ["failed == 0"]    # checked against wfctl.stress.metrics.known_metric_names()

    [smoke]                       # optional overrides for `--smoke`: small, sized by work (counts), not time
    clients = 10
    total = 10
    stuck_after = "2m"            # also: shards, workers, rate, duration, stages, slots,
                                  # size_bytes, iterations, rows, late_after, repeat (default 1)
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from wfctl.durations import parse_duration
from wfctl.paths import is_file
from wfctl.errors import InputError, WfctlError

__all__ = [
    "Scenario",
    "apply_overrides",
    "definition_path",
    "list_scenarios",
    "load_scenario",
    "load_scenarios",
    "scenario_names",
    "scenarios_dir",
    "OVERRIDE_KEYS",
]

PACKAGE = "wfctl_scenarios"
OVERRIDE_KEYS = ("shards", "route", "durability", "workers", "clients", "total", "rate", "duration",
                 "stuck_after", "seed", "scale", "repeat", "backend", "dsn", "isolation", "hot_rows")
#: Repetitions of each variant at most (``repeat``, ``--repeat``).
MAX_REPEAT = 100


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_duration(value, "duration")
        except WfctlError as exc:
            raise ValueError(str(exc).removeprefix("duration: ")) from None
    return value


Duration = Annotated[float, BeforeValidator(_duration), Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # no NaN or infinite numbers


class Meta(_Model):
    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = Field(min_length=1)
    shows: str = Field(min_length=1)


Isolation = Literal["read committed", "serializable"]


class Engine(_Model):
    shards: int = Field(4, ge=1, le=1000)
    route: Literal["definition", "execution"] = "definition"
    durability: Literal["normal", "full"] = "normal"
    workers: int = Field(1, ge=1)
    schedulers: int = Field(0, ge=0)
    backend: Optional[Literal["sqlite", "postgresql"]] = None
    dsn: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    isolation: Optional[Isolation] = None
    hot_rows: bool = False

    @field_validator("dsn", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class Stage(_Model):
    duration: Duration
    target: float = Field(ge=0)


class Workload(_Model):
    model: Literal["closed", "open", "scheduled"]
    clients: Optional[int] = Field(None, ge=1)
    total: Optional[int] = Field(None, ge=1)
    rate: Optional[float] = Field(None, gt=0)
    duration: Optional[Duration] = None
    stages: list[Stage] = Field(default_factory=list)
    max_in_flight: Optional[int] = Field(None, ge=1)
    slots: Optional[int] = Field(None, ge=1)
    late_after: Duration = 1.0

    @model_validator(mode="after")
    def _check_model(self) -> "Workload":
        if self.model == "closed":
            for key in ("clients", "total"):
                if getattr(self, key) is None:
                    raise ValueError(f"model 'closed' needs '{key}'")
        elif self.model == "open":
            if self.rate is None and not self.stages:
                raise ValueError("model 'open' needs 'rate' or 'stages'")
            staged = sum(s.duration for s in self.stages)
            if self.duration is None:
                if not self.stages:
                    raise ValueError("model 'open' needs 'duration' (or 'stages')")
                self.duration = staged
            elif staged > self.duration + 1e-9:
                raise ValueError(f"the stages last {staged:g}s, longer than 'duration' ({self.duration:g}s)")
            if self.duration <= 0:
                raise ValueError("model 'open' needs a positive 'duration'")
        elif self.slots is None:
            raise ValueError("model 'scheduled' needs 'slots'")
        return self


class DefinitionRef(_Model):
    path: Optional[str] = None
    builtin: Optional[str] = None
    inline: Optional[dict[str, Any]] = None
    copies: int = Field(1, ge=1)
    weight: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _one_source(self) -> "DefinitionRef":
        given = [k for k in ("path", "builtin", "inline") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'path', 'builtin', 'inline'")
        return self


class InputSpec(_Model):
    generator: Literal["fixed", "sized", "sequence", "loops"]
    field: str = Field("n", min_length=1)
    value: dict[str, Any] = Field(default_factory=dict)
    size_bytes: int = Field(0, ge=0)
    oversize_every: int = Field(0, ge=0)
    iterations: int = Field(50, ge=1)
    rows: int = Field(2, ge=0)
    seed: Optional[int] = None

    @model_validator(mode="after")
    def _check(self) -> "InputSpec":
        if self.generator == "sized" and self.size_bytes <= 0:
            raise ValueError("generator 'sized' needs 'size_bytes' > 0")
        return self


class _Dimensions(_Model):
    shards: list[Annotated[int, Field(ge=1, le=1000)]] = Field(default_factory=lambda: [1, 4], min_length=1)
    routes: list[Literal["definition", "execution"]] = Field(
        default_factory=lambda: ["definition", "execution"], min_length=1)
    hot_definition: bool = True
    hot_rows: list[bool] = Field(default_factory=list)
    isolation: list[Isolation] = Field(default_factory=list)
    servers: list[Annotated[int, Field(ge=1, le=64)]] = Field(default_factory=lambda: [1], min_length=1)


class Comparison(_Dimensions):
    postgresql: Optional[_Dimensions] = None

    def on(self, backend: str) -> _Dimensions:
        """The dimensions that apply on ``backend``: the ``postgresql`` table's on PostgreSQL, if any."""
        return self.postgresql if backend == "postgresql" and self.postgresql is not None else self


class Thresholds(_Model):
    defaults: list[str] = Field(default_factory=list)

    @field_validator("defaults")
    @classmethod
    def _known(cls, texts: list[str]) -> list[str]:
        from wfctl.store.base import RETRY_CAUSES
        from wfctl.stress.metrics import known_metric_names
        from wfctl.stress.thresholds import parse_threshold

        known = known_metric_names(causes=RETRY_CAUSES, server=True)
        for text in texts:
            try:
                parse_threshold(text, known)
            except WfctlError as exc:
                raise ValueError(str(exc)) from None
        return texts


class Smoke(_Model):
    shards: Optional[int] = Field(None, ge=1, le=1000)
    workers: Optional[int] = Field(None, ge=1)
    clients: Optional[int] = Field(None, ge=1)
    total: Optional[int] = Field(None, ge=1)
    rate: Optional[float] = Field(None, gt=0)
    duration: Optional[Duration] = None
    stages: Optional[list[Stage]] = None
    slots: Optional[int] = Field(None, ge=1)
    size_bytes: Optional[int] = Field(None, ge=1)
    iterations: Optional[int] = Field(None, ge=1)
    rows: Optional[int] = Field(None, ge=0)
    stuck_after: Optional[Duration] = None
    repeat: Optional[int] = Field(None, ge=1, le=MAX_REPEAT)
    late_after: Optional[Duration] = None


class Scenario(_Model):
    """One scenario file, validated. ``source`` is the file it came from."""

    stuck_after: Duration = 300.0
    repeat: int = Field(1, ge=1, le=MAX_REPEAT)
    scenario: Meta
    engine: Engine = Field(default_factory=Engine)
    workload: Workload
    definitions: list[DefinitionRef] = Field(min_length=1)
    input: InputSpec
    comparison: Optional[Comparison] = None
    thresholds: Thresholds = Field(default_factory=Thresholds)
    smoke: Optional[Smoke] = None
    source: Optional[Path] = Field(None, exclude=True)
    smoked: bool = Field(False, exclude=True)

    @model_validator(mode="after")
    def _check_scheduled(self) -> "Scenario":
        if self.workload.model == "scheduled" and self.engine.schedulers < 1:
            raise ValueError("model 'scheduled' needs engine.schedulers >= 1")
        return self

    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def description(self) -> str:
        return self.scenario.description

    @property
    def shows(self) -> str:
        return self.scenario.shows

    def definition_count(self) -> int:
        """How many definitions the scenario registers (copies included)."""
        return sum(d.copies for d in self.definitions)

    def definition_paths(self) -> list[Path]:
        """The definition files referenced by ``path`` or ``builtin`` (inline ones have none)."""
        return [p for d in self.definitions if (p := definition_path(d, self.source)) is not None]

    def apply_smoke(self) -> "Scenario":
        """A copy with the ``[smoke]`` overrides applied; a smoke run runs each variant once unless
        ``[smoke] repeat`` says otherwise."""
        if self.smoked or (self.smoke is None and self.repeat == 1):
            return self
        data = self._data()
        smoke = {"repeat": 1, **(self.smoke.model_dump(exclude_none=True) if self.smoke is not None else {})}
        for key, value in smoke.items():
            if key in ("shards", "workers"):
                data["engine"][key] = value
                if key == "shards":
                    for dims in _dimension_tables(data):
                        dims["shards"] = sorted({1, value})
            elif key in ("clients", "total", "rate", "duration", "stages", "slots", "late_after"):
                data["workload"][key] = value
            elif key in ("size_bytes", "iterations", "rows"):
                data["input"][key] = value
            else:
                data[key] = value
        return _revalidate(data, self.source, "[smoke]", smoked=True)

    def _data(self) -> dict[str, Any]:
        return self.model_dump(mode="python")


def _revalidate(data: dict[str, Any], source: Optional[Path], origin: str, smoked: bool = False) -> Scenario:
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise _one_line(exc, source, origin) from None
    scenario.source = source
    scenario.smoked = smoked
    return scenario


def apply_overrides(scenario: Scenario, overrides: Optional[Mapping[str, Any]]) -> Scenario:
    """A copy of ``scenario`` with command-line overrides; None values are ignored.

    Keys: shards, route, durability, workers, clients, total, rate, duration, stuck_after, seed,
    repeat, backend, dsn (a list), isolation, hot_rows and scale (a factor multiplying the totals,
    rates, stage targets and slots of the file; explicit values given alongside it win). ``rate`` also scales the stage targets by the new
    rate over the file's, so a ramp keeps its shape. On a comparison scenario ``shards`` N makes
    the variants [1, N], and ``route``, ``isolation`` and ``hot_rows`` keep only that value.
    """
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if not given:
        return scenario
    unknown = sorted(set(given) - set(OVERRIDE_KEYS))
    if unknown:
        raise InputError(f"unknown scenario override(s): {', '.join(unknown)} (known: {', '.join(OVERRIDE_KEYS)})")
    data = scenario._data()
    workload, engine = data["workload"], data["engine"]
    scale = given.get("scale")
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < math.inf:
            raise InputError(f"--scale: must be a positive finite number, got {scale!r}")
        if workload.get("total") is not None:
            workload["total"] = max(1, math.ceil(_scaled(workload["total"], scale, "total")))
        if workload.get("rate") is not None:
            workload["rate"] = _scaled(workload["rate"], scale, "rate")
        for stage in workload.get("stages") or []:
            stage["target"] = _scaled(stage["target"], scale, "stage target")
        if workload.get("slots") is not None:
            workload["slots"] = max(1, math.ceil(_scaled(workload["slots"], scale, "slots")))
    for key in ("shards", "route", "durability", "workers", "backend", "dsn", "isolation", "hot_rows"):
        if key in given:
            engine[key] = given[key]
    for dims in _dimension_tables(data):
        if "shards" in given:
            dims["shards"] = sorted({1, given["shards"]})
        if "route" in given:
            dims["routes"] = [given["route"]]
        if "isolation" in given:
            dims["isolation"] = [given["isolation"]]
        if "hot_rows" in given:
            dims["hot_rows"] = [given["hot_rows"]]
    if "rate" in given and workload.get("rate") and workload.get("stages"):
        factor = given["rate"] / workload["rate"]  # the ramp keeps its shape towards the new rate
        for stage in workload["stages"]:
            stage["target"] = stage["target"] * factor
    for key in ("clients", "total", "rate"):
        if key in given:
            workload[key] = given[key]
    if "duration" in given:
        duration = given["duration"]
        workload["duration"] = parse_duration(duration, "--duration") if isinstance(duration, str) else duration
        staged = sum(s["duration"] for s in workload.get("stages") or [])
        if isinstance(workload["duration"], (int, float)) and staged > workload["duration"]:
            workload["stages"] = []  # a shorter run than the ramp: hold `rate` for the whole duration
            if workload.get("rate") is None:
                raise InputError("--duration: shorter than the scenario's stages and the scenario has no 'rate'")
    for key in ("stuck_after", "repeat"):
        if key in given:
            data[key] = given[key]
    if "seed" in given:
        data["input"]["seed"] = given["seed"]
    return _revalidate(data, scenario.source, "the command line", smoked=scenario.smoked)


def _dimension_tables(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``[comparison]`` table and its ``[comparison.postgresql]`` table, those present."""
    comparison = data.get("comparison")
    if not comparison:
        return []
    return [comparison, *([comparison["postgresql"]] if comparison.get("postgresql") else [])]


def _scaled(value: float, scale: float, what: str) -> float:
    """``value * scale``; InputError when that is too large to be a number."""
    product = value * scale
    if not math.isfinite(product):
        raise InputError(f"--scale: {scale!r} makes the scenario's {what} too large")
    return product


def _one_line(exc: ValidationError, source: Optional[Path], origin: Optional[str] = None) -> InputError:
    """The first validation error as ``file: table.field: message``."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "missing":
        msg = "missing"
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more error(s))" if more else ""
    where = f" (from {origin})" if origin else ""
    return InputError(f"{source or '<scenario>'}: {loc}{where}: {msg}{suffix}")


def scenarios_dir() -> Path:
    """The folder of the packaged scenarios: the checkout's ``scenarios/`` or the installed data package."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "scenarios" / "__init__.py").is_file():
        return checkout / "scenarios"
    from importlib.resources import files

    try:
        return Path(str(files(PACKAGE)))
    except ModuleNotFoundError:
        raise InputError(f"the packaged scenarios ('{PACKAGE}') are not installed; reinstall wfctl") from None


def scenario_names() -> list[str]:
    """Names of the packaged scenarios, sorted."""
    return sorted(p.stem for p in scenarios_dir().glob("*.toml"))


def definition_path(ref: DefinitionRef, source: Optional[Path]) -> Optional[Path]:
    """The file a ``[[definitions]]`` entry names (None for an inline definition)."""
    if ref.builtin is not None:
        return scenarios_dir() / "definitions" / f"{ref.builtin}.json"
    if ref.path is None:
        return None
    path = Path(ref.path).expanduser()
    if path.is_absolute():
        return path
    if source is not None and (source.parent / path).exists():
        return source.parent / path
    return scenarios_dir() / path  # a user's copy may keep the packaged relative paths


def _check_definitions(scenario: Scenario, source: Path) -> None:
    for i, ref in enumerate(scenario.definitions):
        path = definition_path(ref, source)
        if path is not None and not path.is_file():
            key = "builtin" if ref.builtin is not None else "path"
            raise InputError(f"{source}: definitions.{i}.{key}: no definition file '{getattr(ref, key)}'")


def _read(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the scenario: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise _one_line(exc, path) from None
    scenario.source = path
    _check_definitions(scenario, path)
    return scenario


def load_scenario(name_or_path: str | Path, overrides: Optional[Mapping[str, Any]] = None, *,
                  smoke: bool = False) -> Scenario:
    """Load a packaged scenario by name or a scenario file by path, then ``--smoke`` and overrides."""
    text = str(name_or_path)
    as_path = Path(text).expanduser()
    if isinstance(name_or_path, Path) or "/" in text or "\\" in text or text.endswith(".toml") or is_file(as_path):
        path = as_path
        if not is_file(path):
            raise InputError(f"{path}: no such scenario file")
    else:
        path = scenarios_dir() / f"{text}.toml"
        if not is_file(path):
            raise InputError(f"unknown scenario '{text}' (known: {', '.join(scenario_names())}; or give a file path)")
    scenario = _read(path)
    if smoke:
        scenario = scenario.apply_smoke()
    return apply_overrides(scenario, overrides)


def load_scenarios(target: str, overrides: Optional[Mapping[str, Any]] = None, *,
                   smoke: bool = False) -> list[Scenario]:
    """``all`` (every packaged scenario, by name), a packaged scenario's name or a file path."""
    names = scenario_names() if target == "all" else [target]
    return [load_scenario(name, overrides, smoke=smoke) for name in names]


def list_scenarios() -> list[Scenario]:
    """Every packaged scenario, by name."""
    return [_read(scenarios_dir() / f"{name}.toml") for name in scenario_names()]
