"""Stress harness building blocks: metrics, thresholds and baseline comparison.

These modules are pure (no terminal UI, no store access) so worker and client
processes can record metrics, ship them to the parent as JSON, and the parent can
merge, evaluate thresholds and compare against a baseline.
"""

from __future__ import annotations

from wfctl.stress.compare import (
    REGRESSION_EXIT_CODE,
    Comparison,
    compare,
    regression_exit_code,
    regressions,
)
from wfctl.stress.metrics import (
    Counters,
    ErrorGroups,
    LatencyRecorder,
    RunMetrics,
    ThroughputBuckets,
    known_metric_names,
)
from wfctl.stress.thresholds import (
    BREACH_EXIT_CODE,
    Threshold,
    ThresholdResult,
    evaluate_thresholds,
    parse_threshold,
    parse_thresholds,
)

__all__ = [
    "BREACH_EXIT_CODE",
    "REGRESSION_EXIT_CODE",
    "Comparison",
    "Counters",
    "ErrorGroups",
    "LatencyRecorder",
    "RunMetrics",
    "Threshold",
    "ThresholdResult",
    "ThroughputBuckets",
    "compare",
    "evaluate_thresholds",
    "known_metric_names",
    "parse_threshold",
    "parse_thresholds",
    "regression_exit_code",
    "regressions",
]
