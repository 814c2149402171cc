"""Pipeline version: bump when a change alters prepass or calibration output
for the same inputs, so cached results from the old code are not reused."""

PIPELINE_VERSION = "1"
