#!/usr/bin/env bash
# The main job on the embedded default: install (first run), then the quick sweep (jobs/quick.yaml) on a
# local Ray instance on this CPU: one SFT trunk from the shipped analogue-base, GRPO trials (Ray Tune) from an
# early and a late SFT length, every run in the local MLflow store (outputs/mlflow.db), the results table in
# outputs/sweeps/quick/results.csv and the recovery report with its figures in outputs/sweeps/quick/report/.
# A rerun finds everything finished and redoes nothing.
# Extra arguments go to `raysweep run`, e.g.:  bash jobs/quickstart.sh rl.max_steps=5 sweep.name=longer
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/install.sh"
cd "$ROOT"
raysweep run jobs/quick.yaml "$@"
