"""Regression harness: registered steps run against the stack and produce one JSON summary that is
diffed against a committed baseline (`tests/baselines/regress.json`)."""

from tator_fixtures.regress.diff import diff_summaries
from tator_fixtures.regress.registry import StepContext, step
from tator_fixtures.regress.runner import run_regress

__all__ = ["StepContext", "diff_summaries", "run_regress", "step"]
