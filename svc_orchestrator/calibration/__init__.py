"""Calibration: accept/reject models over cached prepass candidates.

The orchestrator uses these names (its interface with this package):
`check_guards` and `check_leakage` (before creating a job), `run_calibration` (the job, which
returns the report document) and `apply_accept_model` (Prepass with a calibration id).
`CalibrationEnv` is what the job needs from the orchestrator. Everything here works on plain
Python types (inputs.py); svc_orchestrator/convert/ turns messages into them and the report into
its message.

Module map: candidates (flat table + IoU matrices) · features (the documented
schema) · labeling (one-to-one) · split · models (MLP, XGBoost) · thresholds ·
evaluate (object-level metrics) · pipeline (the synchronous steps) · report ·
accept_model (versioned save/load/apply) · guards · leakage · inputs (what the
calibration reads) · simulate (a seeded stand-in prepass) · flow (the async job).

There is no hyperparameter sweep (hundreds of XGBoost runs per lane moved F1 by
about 0.001): one model of each kind with fixed, documented hyperparameters and
early stopping, thresholds per class on val.
"""

from svc_orchestrator.calibration.accept_model import apply_accept_model, needs_embeddings
from svc_orchestrator.calibration.flow import CalibrationEnv, check_guards, check_leakage, run_calibration

__all__ = ["CalibrationEnv", "apply_accept_model", "check_guards", "check_leakage", "needs_embeddings",
           "run_calibration"]
