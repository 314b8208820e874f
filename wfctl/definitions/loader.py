"""Loading definitions from JSON or YAML files: parsing, the definition id, validation reports.

A definition's id is its top-level ``id`` field, else the file name without its extension;
either must follow :data:`~wfctl.definitions.model.ID_PATTERN`. Problems with the file
itself (missing, unreadable, malformed, a duplicate key, a YAML alias, not an object) are
reported as one issue, never as a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePath
from typing import Any, Collection

from pydantic import ValidationError

from ..errors import DefinitionError
from ..paths import is_dir
from ..strictload import StrictLoadError, load_json, load_yaml
from .model import Definition, definition_id_problem
from .validation import Issue, ValidationReport, schema_issues, validate_definition, value_kind

SUFFIXES = (".json", ".yaml", ".yml")


class _FileProblem(Exception):
    """The file cannot be turned into data; the message is the issue's text."""


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise _FileProblem("no such file") from None
    except IsADirectoryError:
        raise _FileProblem("is a directory, not a definition file") from None
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start]
        raise _FileProblem(f"cannot read: not UTF-8 text (byte {byte:#04x} at offset {exc.start})") from None
    except OSError as exc:
        raise _FileProblem(f"cannot read: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            return load_json(text)
        except json.JSONDecodeError as exc:
            raise _FileProblem(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
        except StrictLoadError as exc:
            raise _FileProblem(f"invalid JSON: {exc}") from None
        except RecursionError:
            raise _FileProblem("invalid JSON: nested too deeply") from None
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            return load_yaml(text)
        except StrictLoadError as exc:
            raise _FileProblem(f"invalid YAML: {exc}") from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
            raise _FileProblem(f"invalid YAML{where}: {exc.problem or exc.context}") from None
        except (yaml.YAMLError, RecursionError) as exc:
            raise _FileProblem(f"invalid YAML: {exc}") from None
    raise _FileProblem(f"unsupported file type '{path.suffix}' (expected {', '.join(SUFFIXES)})")


def _build(data: Any, source: str | None, default_id: str | None,
           check_id: bool = True) -> tuple[Definition | None, str | None, list[Issue]]:
    """(definition or None, the definition id if known, schema issues); ``check_id``: apply
    the id rule (:func:`~wfctl.definitions.model.definition_id_problem`)."""
    if not isinstance(data, dict):
        return None, None, [Issue(source, None, None, f"the top level must be an object, got {value_kind(data)}")]
    named = data.get("id") is not None
    if not named:
        definition_id = default_id or (PurePath(source).stem if source else None)
        if definition_id is None:
            return None, None, [Issue(source, None, "id", "is required when there is no file name to take it from")]
        data = {**data, "id": definition_id}
    definition_id = data["id"] if isinstance(data["id"], str) else None
    problem = definition_id_problem(definition_id) if check_id and definition_id is not None else None
    if problem is not None:
        fix = "" if named else " (taken from the file name: give the definition an 'id' field)"
        return None, None, [Issue(source, None, "id", problem + fix)]
    try:
        return Definition.from_tale(data, source), definition_id, []
    except ValidationError as exc:
        return None, definition_id, schema_issues(exc, data, source)


def parse_definition(data: Any, source: str | None = None, default_id: str | None = None) -> Definition:
    """Build a Definition from tale JSON data, checking its schema only (see :func:`validate_data`).

    The id is ``data['id']``, else ``default_id``, else the stem of ``source``. Raises
    DefinitionError with the first schema error. The id rule is not checked here: a body
    stored in a catalog before the rule existed still loads (files are checked by
    :func:`validate_data`).
    """
    definition, _, issues = _build(data, source, default_id, check_id=False)
    if issues:
        raise DefinitionError(str(issues[0]))
    return definition


def validate_data(
    data: Any,
    source: str | None = None,
    default_id: str | None = None,
    *,
    known_actions: Collection[str] | None = None,
    platform_actions: Collection[str] | None = None,
    stubbed: Collection[tuple[str, str | None]] | None = None,
    policy: Any = None,
) -> ValidationReport:
    """Parse and check ``data``: schema errors, or the semantic errors and warnings of the definition
    (``policy``: the :class:`~wfctl.actions.ActionPolicy` that allows ``module:function`` references)."""
    definition, definition_id, issues = _build(data, source, default_id)
    report = ValidationReport(source, definition_id, definition, issues)
    if definition is not None:
        report.errors, report.warnings = validate_definition(
            definition, known_actions=known_actions, platform_actions=platform_actions, stubbed=stubbed,
            policy=policy)
    return report


def validate_file(
    path: str | Path,
    *,
    known_actions: Collection[str] | None = None,
    platform_actions: Collection[str] | None = None,
    stubbed: Collection[tuple[str, str | None]] | None = None,
    policy: Any = None,
) -> ValidationReport:
    """Load and check a ``.json``/``.yaml``/``.yml`` definition file (never raises for a bad file)."""
    path = Path(path)
    try:
        data = _read(path)
    except _FileProblem as exc:
        return ValidationReport(str(path), None, None, [Issue(str(path), None, None, str(exc))])
    return validate_data(data, str(path), path.stem, known_actions=known_actions,
                         platform_actions=platform_actions, stubbed=stubbed, policy=policy)


def load_definition(
    path: str | Path,
    *,
    known_actions: Collection[str] | None = None,
    platform_actions: Collection[str] | None = None,
    policy: Any = None,
) -> Definition:
    """Load a definition file; raises DefinitionError with the first error (warnings are ignored)."""
    report = validate_file(path, known_actions=known_actions, platform_actions=platform_actions, policy=policy)
    if report.errors:
        raise DefinitionError(str(report.errors[0]))
    return report.definition


def find_definition_files(paths: Collection[str | Path]) -> list[Path]:
    """Expand ``paths``: files stay as given; a directory gives the definition files below it.

    In a directory, a JSON/YAML file that parses to an object without ``steps`` (a stubs file,
    a run input) is not a definition and is left out; files that do not parse are kept so that
    validation reports them.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if not is_dir(path):  # a name too long to look up is reported when it is read
            found.append(path)
            continue
        for candidate in sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()):
            try:
                data = _read(candidate)
            except _FileProblem:
                found.append(candidate)
                continue
            if not isinstance(data, dict) or "steps" in data:
                found.append(candidate)
    return found
