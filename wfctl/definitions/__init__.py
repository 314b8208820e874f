"""Workflow definitions: the pydantic model, JSON/YAML loading, validation (errors and warnings)."""

from .loader import SUFFIXES, find_definition_files, load_definition, parse_definition, validate_data, validate_file
from .model import (
    DEFAULT_MAX_STEPS,
    DEFAULT_TIMEOUT_MS,
    ID_PATTERN,
    NOOP,
    PORTS,
    STEP_TYPES,
    Definition,
    RetryPolicy,
    SecretRef,
    Step,
    WorkflowConfig,
    definition_id_problem,
)
from .validation import KNOWN_ROOTS, Issue, ValidationReport, validate_definition

__all__ = [
    "DEFAULT_MAX_STEPS",
    "DEFAULT_TIMEOUT_MS",
    "ID_PATTERN",
    "KNOWN_ROOTS",
    "NOOP",
    "PORTS",
    "STEP_TYPES",
    "SUFFIXES",
    "Definition",
    "Issue",
    "RetryPolicy",
    "SecretRef",
    "Step",
    "ValidationReport",
    "WorkflowConfig",
    "definition_id_problem",
    "find_definition_files",
    "load_definition",
    "parse_definition",
    "validate_data",
    "validate_definition",
    "validate_file",
]
