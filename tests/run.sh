#!/usr/bin/env bash
# Install (first run) and run the whole test suite: unit tests and the integration tests (real models,
# real generation). Extra arguments go to pytest, e.g.  bash tests/run.sh -m "not integration" -x
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../jobs/install.sh"
cd "$ROOT"
python -m pytest -p no:cacheprovider --durations=15 "$@"
